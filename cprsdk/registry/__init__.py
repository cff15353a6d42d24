"""The registry in object storage, the typed version manifest, and deploys.

    manifest.py  Manifest: the stored version record, parsed and validated once; fetching a version
    registry.py  models and versions under one storage root: create-only, compare-and-swap
    deploy.py    ``cprsdk deploy``: check, upload what is missing, publish last
"""
