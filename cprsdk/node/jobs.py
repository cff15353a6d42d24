"""AI Platform batch prediction jobs on the node: ``projects.jobs`` create, get, list and cancel.

A job runs the same code as ``cprsdk batch predict`` (``cprsdk.batch.jobs``) against a version of
the node's registry, in the background; its record follows AI Platform's Job resource
(``predictionInput``, ``state``, ``predictionOutput``). Input and output URIs must sit under the
node's allowed prefixes, like a version's artifacts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from cprsdk.batch import fields
from cprsdk.batch.instances import InstanceConfig
from cprsdk.errors import CprError, RegistryError, RequestError
from cprsdk.node.management import Management, drop_oldest
from cprsdk.node.worker import public_error
from cprsdk.registry.registry import Registry, utc_now, validate_name

__all__ = ["JobRoutes"]

log = logging.getLogger("cprsdk.node")

_JOB_FORMATS = {"JSON": "jsonl", "CSV": "csv", "PARQUET": "parquet", "FILES": "files"}
_OUTPUT_FORMATS = {"JSON": "jsonl", "PARQUET": "parquet"}
_COMPRESSIONS = {"NONE": "none", "GZIP": "gzip"}
_FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")


def _options(given: dict[str, Any]) -> dict[str, Any]:
    """The JobSpec settings a job body may give, each checked (a 400 names the field at fault)."""
    data_format = _JOB_FORMATS.get(fields.string(given, "dataFormat", default="JSON").upper())
    if data_format is None:
        raise RequestError(f"predictionInput.dataFormat {given.get('dataFormat')!r} is not supported.",
                           hint=f"Use one of {', '.join(_JOB_FORMATS)}.")
    return {"data_format": data_format, **_output(given), **_instance_config(given),
            "batch_size": fields.integer(given, "batchSize", default=64, low=1),
            "workers": fields.integer(given, "maxWorkerCount", default=1, low=1, high=fields.MAX_WORKER_COUNT),
            "record_timeout": fields.number(given, "recordTimeout")}


def _choice(given: dict[str, Any], name: str, choices: dict[str, str], default: str) -> str:
    value = choices.get(fields.string(given, name, default=default).upper())
    if value is None:
        raise RequestError(f"predictionInput.{name} {given.get(name)!r} is not supported.",
                           hint=f"Use one of {', '.join(choices)}.")
    return value


def _output(given: dict[str, Any]) -> dict[str, Any]:
    return {"output_format": _choice(given, "outputDataFormat", _OUTPUT_FORMATS, "JSON"),
            "output_compression": _choice(given, "outputCompression", _COMPRESSIONS, "NONE")}


def _instance_config(given: dict[str, Any]) -> dict[str, Any]:
    """Vertex AI's ``instanceConfig`` object, each field checked."""
    config = given.get("instanceConfig") or {}
    if not isinstance(config, dict):
        raise RequestError(f"predictionInput.instanceConfig must be a JSON object, got {config!r}.",
                           hint="Send instanceType, keyField, includedFields or excludedFields in an object.")
    checked: dict[str, Any] = {"instance_type": fields.string(config, "instanceType", where="instanceConfig") or None,
                               "key_field": fields.string(config, "keyField", where="instanceConfig") or None,
                               "included_fields": tuple(fields.strings(config, "includedFields",
                                                                       where="instanceConfig")),
                               "excluded_fields": tuple(fields.strings(config, "excludedFields",
                                                                       where="instanceConfig"))}
    try:
        InstanceConfig(**checked).check(_JOB_FORMATS.get(str(given.get("dataFormat", "JSON")).upper(), ""))
    except CprError as exc:
        raise RequestError(f"predictionInput.instanceConfig: {exc.message}", hint=exc.hint) from None
    return checked


@dataclass
class JobRoutes:
    management: Management
    max_records: int = 1000  # finished jobs kept in memory: the newest; running ones always stay
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _trim(self) -> None:
        finished = sum(1 for r in self.jobs.values() if r["state"] in _FINISHED)
        running = len(self.jobs) - finished
        drop_oldest(self.jobs, running + self.max_records, lambda r: r["state"] in _FINISHED)

    async def create_job(self, registry: Registry, project: str, body: dict[str, Any]) -> dict[str, Any]:
        from cprsdk.batch.jobs import JobSpec
        from cprsdk.runtime.resolved import resolve_registry_version

        job = validate_name("Job", str(body.get("jobId")))
        if job in self.jobs:
            raise RegistryError(f"Job {job!r} exists already on this node.", status_code=409)
        given = body.get("predictionInput") or {}
        if not isinstance(given, dict):
            raise RequestError(f"predictionInput must be a JSON object, got {given!r}.",
                               hint="Send predictionInput as an object with inputPaths, outputPath and modelName.")
        options = _options(given)
        inputs = [self.management.check_uri("inputPaths", u) for u in fields.strings(given, "inputPaths",
                                                                                      required=True)]
        output = self.management.check_uri("outputPath", fields.string(given, "outputPath"))
        name = fields.string(given, "versionName") or fields.string(given, "modelName")
        parts = name.split("/")
        if len(parts) not in (4, 6) or parts[2] != "models":
            raise RequestError(f"predictionInput needs modelName projects/P/models/M or versionName "
                               f".../versions/V, got {name!r}.")
        version = await asyncio.to_thread(resolve_registry_version, registry, parts[3],
                                          parts[5] if len(parts) == 6 else None, cache=self.management.manager.cache)
        spec = JobSpec(inputs=tuple(inputs), output=output.rstrip("/"), version=version, **options,
                       source={"model": version.model, "version": version.name, "registry": registry.uri})
        record = {"jobId": job, "state": "QUEUED", "predictionInput": given, "createTime": utc_now()}
        self.jobs[job] = record
        self._trim()
        asyncio.create_task(self._run_job(record, spec))
        return dict(record)

    async def _run_job(self, record: dict[str, Any], spec: Any) -> None:
        from cprsdk.batch.jobs import run_job

        record["state"] = "RUNNING"
        try:
            summary = await asyncio.to_thread(run_job, spec)
        except Exception as exc:  # whatever ended it, the job never stays RUNNING
            if isinstance(exc, (CprError, OSError)):
                log.error("job %s failed: %s", record["jobId"], exc)
            else:
                log.exception("job %s failed", record["jobId"])
            record.update(state="FAILED", errorMessage=public_error(exc), endTime=utc_now())
            self._trim()
            return
        state = {"STOPPED": "CANCELLED"}.get(summary.state, summary.state)
        record.update(state=state, endTime=utc_now(), predictionOutput={
            "outputPath": spec.output, "predictionCount": summary.succeeded, "errorCount": summary.failed})
        if summary.message:
            record["errorMessage"] = summary.message
        self._trim()

    def get_job(self, job: str) -> dict[str, Any]:
        if job not in self.jobs:
            raise RequestError(f"Job {job!r} is not known to this node.", status_code=404)
        return dict(self.jobs[job])

    async def cancel_job(self, job: str) -> dict[str, Any]:
        from cprsdk.storage import open_store

        record = self.get_job(job)
        if record["state"] in ("QUEUED", "RUNNING"):
            output = record["predictionInput"]["outputPath"].rstrip("/")
            await asyncio.to_thread(open_store(output).write, "_STOP", b"stop\n")
            self.jobs[job]["state"] = "CANCELLING"
        return self.get_job(job)
