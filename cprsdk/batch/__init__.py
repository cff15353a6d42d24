"""Batch prediction jobs: every input record ends as a prediction or an error line.

    jobs.py     JobSpec, run_job and the job's layout under --output
    inputs.py   input URIs, folders and globs to objects, then numbered records
    scoring.py  one shard scored in a worker process, its output files encoded there
    engines.py  local worker processes or a Dask cluster
    commits.py  _job.json, shard commit markers, the CSV views
    index.py    the jobs started on this machine: list, status, stop, results
"""
