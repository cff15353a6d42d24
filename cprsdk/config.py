"""Settings, read once from one precedence chain.

    command-line flag  >  CPRSDK_<KEY> environment variable  >  project file  >  default

The project file is ``cprsdk.toml`` (keys at its top level) if the project folder has one,
else the ``[tool.cprsdk]`` table of its ``pyproject.toml``. Relative paths in a project file are
relative to that file's folder; relative paths in flags and variables are relative to the
current directory. docs/configuration.md lists every key (a test keeps it in step with KEYS).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["KEYS", "Settings", "load_settings", "load_toml", "project_table"]


@dataclass(frozen=True)
class Key:
    name: str
    kind: str  # "str" | "path" | "paths" | "float" | "int" | "bool"
    default: Any
    doc: str
    flag: str | None = None


KEYS: tuple[Key, ...] = (
    Key("name", "str", None, "Distribution name for a bare folder of modules (default: the folder name).", "--name"),
    Key("version", "str", "0.1", "Distribution version for a bare folder of modules.", "--version"),
    Key("prediction_class", "str", None, "Qualified name of the prediction class, e.g. predictor.MyPredictor.",
        "--prediction-class"),
    Key("framework", "str", None, "With no prediction class: serve the model file as AI Platform's prebuilt "
        "runtime did (scikit-learn or xgboost).", "--framework"),
    Key("model_dir", "path", "model", "The model directory: artifacts your from_path loads.", "--model-dir"),
    Key("packages", "paths", (".",), "Packages for `local predict`: sdists or source folders.", "--package"),
    Key("out", "path", "dist", "Where `cprsdk package` writes the sdist.", "--out"),
    Key("max_code_mb", "float", 250.0, "Quota on the sum of the code packages, in MB (10^6 bytes).", "--max-code-mb"),
    Key("max_model_mb", "float", 250.0, "Quota on the model directory, in MB (10^6 bytes).", "--max-model-mb"),
    Key("max_model_files", "int", 1000, "Quota on the number of files in the model directory.", "--max-model-files"),
    Key("allow_unsafe_pickles", "bool", False,
        "Accept, with a warning, pickles that reference anything outside the allowlist.", "--allow-unsafe-pickles"),
    Key("skip_load_check", "bool", False, "Do not load the version before upload (for models too big to load "
        "on the build machine).", "--skip-load-check"),
    Key("smoke_instances", "path", None, "JSON lines file: `package` and `deploy` run one smoke prediction on it.",
        "--json-instances"),
    Key("isolated", "bool", False, "Build in an isolated environment (needs a package index).", "--isolated"),
    Key("registry", "uri", None, "Registry root: a folder, file://, gs://, s3://, memory:// ... URI.", "--registry"),
    Key("max_header_bytes", "int", 32768, "`serve`: cap on a request's header block; past it 431.",
        "--max-header-bytes"),
    Key("header_timeout", "float", 60.0, "`serve`: seconds for a request's whole header block; past it 408.",
        "--header-timeout"),
    Key("body_timeout", "float", 60.0, "`serve`: seconds for a request's whole body; past it 408.", "--body-timeout"),
    Key("keepalive_timeout", "float", 75.0, "`serve`: seconds an idle connection stays open between requests.",
        "--keepalive-timeout"),
    Key("max_connections", "int", 512, "`serve`: connections open at once; past it the longest-waiting idle "
        "one is shed, else 503.", "--max-connections"),
    Key("max_batch_size", "int", None, "`deploy`: the version's dynamic batching, the instances one predict call "
        "may take (1: off); `serve`: the default of versions that set none.", "--max-batch-size"),
    Key("max_batch_wait_ms", "float", None, "`deploy` and `serve`, with max_batch_size: how long requests are "
        "collected while every worker is busy.", "--max-batch-wait-ms"),
    Key("record_timeout", "float", None, "`batch predict`: seconds one predict call may take before its worker is "
        "ended and the record at fault becomes an error line.", "--record-timeout"),
)
_BY_NAME = {k.name: k for k in KEYS}


@dataclass(frozen=True)
class Settings:
    """Every setting, resolved. Paths are absolute."""

    project_dir: Path
    name: str | None = None
    version: str = "0.1"
    prediction_class: str | None = None
    framework: str | None = None
    model_dir: Path = Path("model")
    packages: tuple[Path, ...] = ()
    out: Path = Path("dist")
    max_code_mb: float = 250.0
    max_model_mb: float = 250.0
    max_model_files: int = 1000
    allow_unsafe_pickles: bool = False
    skip_load_check: bool = False
    smoke_instances: Path | None = None
    isolated: bool = False
    registry: str | None = None
    max_header_bytes: int = 32768
    header_timeout: float = 60.0
    body_timeout: float = 60.0
    keepalive_timeout: float = 75.0
    max_connections: int = 512
    max_batch_size: int | None = None
    max_batch_wait_ms: float | None = None
    record_timeout: float | None = None
    sources: Mapping[str, str] = field(default_factory=dict)  # key -> "flag" | "env" | file | "default"

    def describe(self, key: str) -> str:
        """Where a key's value came from, for messages: 'flag --model-dir', '[tool.cprsdk]', ..."""
        origin = self.sources.get(key, "default")
        spec = _BY_NAME[key]
        if origin == "flag":
            return f"flag {spec.flag}"
        if origin == "env":
            return f"variable CPRSDK_{key.upper()}"
        return origin


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key} must be true or false, got {value!r}.")


def _number(cast: Callable[[Any], Any], label: str) -> Callable[[str, Any], Any]:
    def parse(key: str, value: Any) -> Any:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be {label}, got {value!r}.")
        try:
            number = cast(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be {label}, got {value!r}.") from None
        if number < 0:
            raise ConfigError(f"{key} must not be negative, got {value!r}.")
        return number

    return parse


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a non-empty string, got {value!r}.")
    return value.strip()


def _paths(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = [_str(key, v) for v in value]
    else:
        raise ConfigError(f"{key} must be a list of paths, got {value!r}.")
    if not items:
        raise ConfigError(f"{key} must name at least one path.")
    return tuple(i.strip() for i in items)


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "str": _str,
    "path": _str,
    "uri": _str,
    "paths": _paths,
    "float": _number(float, "a number"),
    "int": _number(int, "a whole number"),
    "bool": _bool,
}


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from None


def project_table(project_dir: Path) -> tuple[dict[str, Any], str, Path]:
    """The raw cprsdk table of a project, with a label for messages and the file it came from."""
    own = project_dir / "cprsdk.toml"
    pyproject = project_dir / "pyproject.toml"
    for path, label in ((own, "cprsdk.toml"), (pyproject, "[tool.cprsdk]")):
        if not path.is_file():
            continue
        data = load_toml(path)
        if path is pyproject:
            data = data.get("tool", {}).get("cprsdk", {})
        if not isinstance(data, dict):
            raise ConfigError(f"{label} in {path} must be a table.")
        return data, label, path
    return {}, "default", project_dir


def _check_known(key: str, origin: str) -> str:
    norm = key.replace("-", "_")
    if norm not in _BY_NAME:
        close = difflib.get_close_matches(norm, list(_BY_NAME), n=1)
        hint = f"Did you mean {close[0]!r}?" if close else "See docs/configuration.md for every key."
        raise ConfigError(f"Unknown setting {key!r} in {origin}.", hint=hint)
    return norm


def _resolve(kind: str, value: Any, base: Path) -> Any:
    if kind == "path":
        return (base / value).resolve()
    if kind == "uri" and "://" not in value:
        return str((base / value).resolve())
    if kind == "paths":
        return tuple((base / v).resolve() for v in value)
    return value


def load_settings(
    project_dir: str | os.PathLike[str] = ".",
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every key through the chain. ``flags`` maps key names to values (None = not given)."""
    project = Path(project_dir).resolve()
    environ = os.environ if environ is None else environ
    table, label, _ = project_table(project)
    cwd = Path.cwd()
    values: dict[str, Any] = {k.name: _resolve(k.kind, _PARSERS[k.kind](k.name, k.default), project)
                              if k.default is not None else None for k in KEYS}
    sources: dict[str, str] = {}
    for raw_key, raw in table.items():
        key = _check_known(raw_key, label)
        spec = _BY_NAME[key]
        values[key] = _resolve(spec.kind, _PARSERS[spec.kind](f"{key} in {label}", raw), project)
        sources[key] = label
    for spec in KEYS:
        env_value = environ.get(f"CPRSDK_{spec.name.upper()}")
        if env_value is not None:
            values[spec.name] = _resolve(
                spec.kind, _PARSERS[spec.kind](f"CPRSDK_{spec.name.upper()}", env_value), cwd
            )
            sources[spec.name] = "env"
    for key, raw in (flags or {}).items():
        if raw is None:
            continue
        spec = _BY_NAME[_check_known(key, "flags")]
        values[spec.name] = _resolve(spec.kind, _PARSERS[spec.kind](spec.flag or key, raw), cwd)
        sources[spec.name] = "flag"
    known = {f.name for f in dataclasses.fields(Settings)}
    return Settings(project_dir=project, sources=sources, **{k: v for k, v in values.items() if k in known})
