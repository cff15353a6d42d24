"""Batch prediction jobs: every input record ends as a prediction or an error line.

    jobs.py  JobSpec, run_job and the job's layout under --output
"""
