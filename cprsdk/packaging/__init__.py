"""From a source folder to a checked, reproducible sdist, and from an sdist to an installed folder.

    packager.py     ``cprsdk package``: the checks, in order, and the report
    layout.py       bare folders of modules: build files rendered from templates/
    build.py        PEP 517 builds and reproducible sdists
    install.py      installing sdists and wheels into a folder, content-addressed caches
    requirements.py declared requirements: met by the runtime or installed per version
    limits.py       code and model-directory quotas
    pickles.py      scanning pickles without running them
    pickle_policy.py the allowlist of what a pickle may reference
    templating.py   rendering templates/ (projects and bare-folder build files)
    scaffold.py     ``cprsdk init``
"""
