"""From an input record to the instance the model gets: Vertex AI's ``instanceConfig`` semantics.

- ``instance_type``: ``"object"`` (a JSON object) or ``"array"`` (a JSON array), or None: as the
  input gives it (a JSON line as it is; a CSV or Parquet row as an array, in column order). CSV
  rows cannot become objects; a JSON line must be an object to become an object, and an object
  becomes an array only in the order ``included_fields`` gives.
- ``key_field``: that field's value is left out of the instance and written to the output as
  ``"key"``, in place of the instance.
- ``included_fields`` (only those, in that order) or ``excluded_fields`` (all but those), never both.
  Without ``key_field``, the output's ``"instance"`` is the whole record (excluded fields included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cprsdk.errors import ConfigError

__all__ = ["InstanceConfig", "from_columns", "from_line"]

_TYPES = ("object", "array")


@dataclass(frozen=True)
class InstanceConfig:
    instance_type: str | None = None
    key_field: str | None = None
    included_fields: tuple[str, ...] = ()
    excluded_fields: tuple[str, ...] = ()

    @classmethod
    def of(cls, spec: dict[str, Any]) -> InstanceConfig:
        return cls(spec.get("instance_type"), spec.get("key_field"), tuple(spec.get("included_fields") or ()),
                   tuple(spec.get("excluded_fields") or ()))

    @property
    def selects(self) -> bool:
        return bool(self.key_field or self.included_fields or self.excluded_fields)

    def check(self, data_format: str) -> None:
        """Refuse settings that cannot apply to ``data_format`` (before any record is read)."""
        if self.instance_type not in (None, *_TYPES):
            raise ConfigError(f"--instance-type {self.instance_type!r} is not one of {', '.join(_TYPES)}.",
                              hint="Use object or array, or leave it out to send records as they come.")
        if self.included_fields and self.excluded_fields:
            raise ConfigError("--included-fields and --excluded-fields were both given; Vertex AI allows one.",
                              hint="Keep the fields you want with --included-fields, or drop some with "
                                   "--excluded-fields.")
        if data_format == "csv" and self.instance_type == "object":
            raise ConfigError("--instance-type object does not apply to CSV input: its rows are arrays.",
                              hint="Leave --instance-type out (or use array) for CSV, or give JSON lines or Parquet.")
        if data_format == "files" and (self.selects or self.instance_type):
            raise ConfigError("--instance-type, --key-field, --included-fields and --excluded-fields do not apply "
                              "to --data-format files (each file is one raw body).",
                              hint="Leave them out, or give JSON lines, CSV or Parquet.")


def from_line(value: Any, config: InstanceConfig) -> tuple[Any, Any, Any]:
    """(key, instance, the record as written to the output) of a parsed JSON line."""
    if isinstance(value, dict):
        return _from_object(value, config)
    if config.instance_type == "object" or config.selects:
        what = "--instance-type object" if config.instance_type == "object" else _selecting(config)
        raise ValueError(f"the line is a JSON {_kind(value)}, and {what} needs a JSON object on each line")
    if config.instance_type == "array" and not isinstance(value, list):
        raise ValueError(f"the line is a JSON {_kind(value)}, and --instance-type array needs an array or an object")
    return None, value, value


def from_columns(names: list[str], values: list[Any], config: InstanceConfig) -> tuple[Any, Any, Any]:
    """(key, instance, the record as written to the output) of a CSV or Parquet row."""
    row = dict(zip(names, values, strict=True))
    key = _key(row, config)
    chosen = _chosen(row, names, config)
    if config.instance_type == "object":
        return key, {n: row[n] for n in chosen}, row
    return key, [row[n] for n in chosen], list(values)


def _from_object(value: dict[str, Any], config: InstanceConfig) -> tuple[Any, Any, Any]:
    key = _key(value, config)
    chosen = _chosen(value, list(value), config)
    if config.instance_type == "array":
        if not config.included_fields:
            raise ValueError("the line is a JSON object, and --instance-type array needs --included-fields to "
                             "give the order of its values")
        return key, [value[n] for n in chosen], value
    if not config.selects:
        return None, value, value
    return key, {n: value[n] for n in chosen}, value


def _key(record: dict[str, Any], config: InstanceConfig) -> Any:
    if not config.key_field:
        return None
    if config.key_field not in record:
        raise ValueError(f"the record has no key field {config.key_field!r}")
    return record[config.key_field]


def _chosen(record: dict[str, Any], names: list[str], config: InstanceConfig) -> list[str]:
    if config.included_fields:
        missing = [n for n in config.included_fields if n not in record]
        if missing:
            raise ValueError(f"the record has no field {', '.join(map(repr, missing))} of --included-fields")
        return list(config.included_fields)
    return [n for n in names if n != config.key_field and n not in config.excluded_fields]


def _kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _selecting(config: InstanceConfig) -> str:
    return "--key-field" if config.key_field else (
        "--included-fields" if config.included_fields else "--excluded-fields")
