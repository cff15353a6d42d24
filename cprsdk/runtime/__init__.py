"""Running a predictor: loading it by name, the adapters for every predictor form, the codecs,
the child process a predictor runs in, and one resolution of a version into what a worker needs.

    predictor.py  the AI Platform Predictor contract and loading a class by name
    adapters.py   one adapter per predictor form (CPR, Vertex class, SageMaker module, hooks)
    sagemaker.py  what SageMaker's containers do around a handler module (bodies, defaults, responses)
    sagemaker_shim.py  sagemaker_containers / sagemaker_inference stand-ins, when the real ones are absent
    payload.py    JSON request and response rules (depth, big integers, non-finite numbers)
    formats.py    canned decoders by content type and output formatters
    child.py      the boot of every child interpreter (sandbox, node worker, batch worker)
    sandbox.py    one job in a fresh interpreter: the import check, or one local prediction
    resolved.py   ResolvedVersion: a version turned, once, into class, model folder and sites
    local.py      ``cprsdk local predict``
"""
