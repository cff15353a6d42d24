"""``cprsdk package``: build a reproducible sdist and prove, before any upload, that it will load.

Order of work (nothing is written to the output folder unless every check passes):

1. the model directory's size and file-count quotas;
2. every pickle in the model directory, scanned without being executed: ``__main__`` references
   and anything outside the allowlist (:mod:`cprsdk.packaging.pickle_policy`) are refused;
3. the sdist, built from a clean copy of the project (a bare folder of modules gets its build
   files rendered from ``templates/sdist``), then normalised so its bytes depend only on file
   names and contents; the code quota;
4. a clean interpreter with only the sdist installed (as a node installs it) imports the
   prediction class and resolves every global the pickles reference;
5. the load check (``load_check``): another clean interpreter loads the version from the real
   model directory, as a node worker does, and reports the time and peak memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.config import Settings
from cprsdk.errors import BuildError, ConfigError, PackageError, PickleCheckError, PredictorLoadError
from cprsdk.packaging.build import build_distribution, build_sdist_and_wheel, normalize_sdist, with_flat_layout
from cprsdk.packaging.install import PackageFile, install_package, install_wheel, sha256_file
from cprsdk.packaging.layout import bare_layout, copy_project, is_bare_folder
from cprsdk.packaging.limits import check_code_size, check_model_dir, format_mb
from cprsdk.packaging.pickle_checks import policy_problems, static_pickle_checks
from cprsdk.packaging.pickles import GlobalRef
from cprsdk.runtime.sandbox import run_job

__all__ = ["Check", "ModelChecks", "PackageResult", "build_sdist", "check_code", "check_model", "is_bare_folder",
           "package"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # passed, but only because a safety check was turned off


@dataclass(frozen=True)
class ModelChecks:
    """What the model-directory checks found: the folder (None if absent), checks, pickles, globals."""

    model_dir: Path | None
    checks: tuple[Check, ...]
    pickles: tuple[dict[str, Any], ...]
    refs: frozenset[GlobalRef]


@dataclass(frozen=True)
class PackageResult:
    """What ``cprsdk package`` built and checked; ``to_json()`` is the ``--report`` file."""

    sdist: Path
    sha256: str
    bytes: int
    name: str
    version: str
    prediction_class: str
    layout: str  # "project" (own build files) | "bare" (rendered from templates/sdist) | "flat" (modules declared)
    model_dir: Path | None
    checks: tuple[Check, ...]
    pickles: tuple[dict[str, Any], ...]
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sdist"] = str(self.sdist)
        data["model_dir"] = str(self.model_dir) if self.model_dir else None
        return data


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _unsafe_check(accepted: list[str]) -> list[Check]:
    """One warning check naming every refusal that --allow-unsafe-pickles let through."""
    if not accepted:
        return []
    return [Check("unsafe pickles", True, f"{len(accepted)} refused pickle reference(s) accepted only because of "
                  "--allow-unsafe-pickles: " + "\n  ".join(accepted), warning=True)]


def _install_for_check(sdists: list[Path], wheels: list[Path] | None, site: Path) -> None:
    if wheels:  # built beside the sdist from the sdist itself: install them as a node would
        for wheel in wheels:
            install_wheel(wheel, site)
        return
    for sdist in sdists:
        install_package(PackageFile(sdist, sha256_file(sdist)), site)


def _reference_problems(pickles: list[dict[str, Any]], answers: list[dict[str, Any]]) -> tuple[list[str], int]:
    """What the pickles need that does not resolve, and how many references the package satisfied."""
    by_ref = {f"{r['module']}.{r['name']}": r for r in answers}
    problems, in_package = [], 0
    for scan in pickles:
        for ref_text in scan["references"]:
            found = by_ref.get(ref_text)
            if found is None:
                continue
            if found["status"] == "ok":
                in_package += found["origin"] == "package"
            elif found["status"] == "missing-module":
                problems.append(
                    f"{scan['path']} needs {ref_text}, but module {found['module']!r} is neither in the "
                    f"package nor installed in the runtime ({found['detail']}). Add {found['module']} "
                    f"to the package (a bare folder: put its .py file beside your predictor; a project: "
                    f"list it in py-modules or packages), or install its distribution."
                )
            else:
                problems.append(f"{scan['path']} needs {ref_text}, which cannot be loaded: {found['detail']}")
    return problems, in_package


def _clean_import_check(
    settings: Settings, sdists: list[Path], refs: set[GlobalRef], pickles: list[dict[str, Any]], work: Path,
    wheels: list[Path] | None = None,
) -> tuple[Check, ...]:
    from cprsdk.packaging.requirements import ensure_requirements

    site = work / "site"
    _install_for_check(sdists, wheels, site)
    shown = ", ".join(s.name for s in sdists)
    sites = ensure_requirements(site)  # as every path that runs the package installs them
    answer = run_job(
        {"kind": "check", "sites": [str(s) for s in sites], "prediction_class": settings.prediction_class,
         "references": [[r.module, r.name] for r in sorted(refs)]},
        cwd=work,
    )
    if "class" not in answer:
        raise PackageError(f"The import check could not run: {answer['body']['error']['message']}\n"
                           f"{answer.get('log_tail', '')}".rstrip())
    problems: list[str] = []
    cls = answer["class"] or {"status": "ok"}  # None: a framework version, which has no class to import
    if cls["status"] != "ok":
        message = cls["message"].replace(str(site), f"the built package {shown}")
        problems.append(f"{message} {cls.get('hint') or ''}".rstrip())
    reference_problems, in_package = _reference_problems(pickles, answer["references"])
    refused, unsafe = policy_problems(settings, refs, pickles, answer["references"])
    problems += reference_problems + refused
    if problems:
        raise PickleCheckError("\n".join(problems)) if cls["status"] == "ok" else PredictorLoadError(
            "\n".join(problems))
    return (
        *_unsafe_check(unsafe),
        _class_check(settings, shown),
        Check("pickle references", True,
              f"{len(refs)} globals resolve ({in_package} from the package, the rest from the runtime)"),
        _requirements_check(site, sites),
    )


def _class_check(settings: Settings, shown: str) -> Check:
    if settings.prediction_class:
        return Check("prediction class", True, f"{settings.prediction_class} imports from {shown or 'nothing'} alone")
    from cprsdk.runtime.frameworks import model_file, normalize_framework

    framework = normalize_framework(str(settings.framework))
    found = model_file(framework, settings.model_dir).name if settings.model_dir.is_dir() else "no model directory"
    return Check("framework", True, f"{framework}: serves {found}" + (f", code from {shown}" if shown else ""))


def _requirements_check(site: Path, sites: list[Path]) -> Check:
    from cprsdk.packaging.requirements import declared_requirements, unmet

    declared = declared_requirements(site)
    missing = unmet(declared, [str(site)])
    if not declared:
        return Check("requirements", True, "none declared")
    if not missing:
        return Check("requirements", True, f"{len(declared)} declared, all installed here")
    return Check("requirements", True, f"{len(declared)} declared; installed for the check (cached in "
                 f"{sites[-1]}): {', '.join(missing)}; local predict, batch and nodes install the same")


def _require_class(settings: Settings) -> str:
    from cprsdk.runtime.frameworks import run_name
    from cprsdk.runtime.resolved import NO_CLASS_HINT

    target = run_name(prediction_class=settings.prediction_class, framework=settings.framework)
    if target is None:
        raise ConfigError("No prediction class is set.", hint=NO_CLASS_HINT)
    return target


def _resolve_model_dir(settings: Settings) -> Path | None:
    model_dir = settings.model_dir
    if model_dir.is_dir():
        return model_dir
    if "model_dir" in settings.sources:
        raise ConfigError(
            f"Model directory {model_dir} ({settings.describe('model_dir')}) does not exist.",
            hint="Train the model first, or point --model-dir at the folder your from_path loads.",
        )
    return None


def check_model(settings: Settings, *, step: Callable[[str], None] = lambda _: None) -> ModelChecks:
    """The model directory's quotas and the static pickle scan (nothing is built or imported)."""
    model_dir = _resolve_model_dir(settings)
    if model_dir is None:
        return ModelChecks(None, (Check("model quota", True, f"no model directory at {settings.model_dir}; skipped"),),
                           (), frozenset())
    step("checking the model directory quota")
    src = settings.project_dir
    stats = check_model_dir(model_dir, max_mb=settings.max_model_mb, max_files=settings.max_model_files,
                            base=src, source=settings.describe("max_model_mb"))
    check = Check("model quota", True, f"{_shown(model_dir, src)}/: {len(stats.files)} files, "
                  f"{format_mb(stats.total_bytes)} of {settings.max_model_mb:g} MB")
    step("scanning pickles")
    pickles, refs, unsafe = static_pickle_checks(settings, model_dir)
    return ModelChecks(model_dir, (check, *_unsafe_check(unsafe)), tuple(pickles), frozenset(refs))


def check_code(
    settings: Settings, sdists: list[Path], model: ModelChecks, *, work: Path,
    step: Callable[[str], None] = lambda _: None, wheels: list[Path] | None = None,
) -> list[Check]:
    """The code quota, then the clean import of the prediction class and the pickles' globals."""
    _require_class(settings)
    size = check_code_size(sdists, max_mb=settings.max_code_mb, source=settings.describe("max_code_mb"))
    checks = [Check("code quota", True, f"{', '.join(s.name for s in sdists) or 'no packages'}: {format_mb(size)} "
                    f"of {settings.max_code_mb:g} MB")]
    step("importing the prediction class from the sdist alone" if sdists else "resolving the pickles' globals")
    checks.extend(_clean_import_check(settings, sdists, set(model.refs), list(model.pickles), work, wheels))
    checks.extend(_load_step(settings, model, work, step))
    return checks


def _load_step(settings: Settings, model: ModelChecks, work: Path, step: Callable[[str], None]) -> list[Check]:
    """The version loaded from the real model directory in the clean child (see load_check)."""
    from cprsdk.packaging.load_check import load_check

    step("loading the version from the model directory")
    from cprsdk.packaging.requirements import ensure_requirements

    sites = ensure_requirements(work / "site")  # the import check installed them: the same folders
    found = load_check(settings, target=_require_class(settings), sites=sites, model_dir=model.model_dir, work=work)
    return [Check(name, True, detail) for name, detail in found]


def package(settings: Settings, *, step: Callable[[str], None] = lambda _: None) -> PackageResult:
    """Check and build ``settings.project_dir``; returns where the sdist is and what was checked."""
    src = settings.project_dir
    if not src.is_dir():
        raise ConfigError(f"Source folder {src} does not exist.")
    _require_class(settings)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    model = check_model(settings, step=step)
    timings["model_checks"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="cprsdk-package-") as tmp:
        work = Path(tmp)
        step("building the sdist")
        t0 = time.perf_counter()
        built = _build(settings, model.model_dir, work)
        timings["build"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        wheels = [built.wheel] if built.wheel else None
        checks = [*model.checks, *built.layout_checks(),
                  *check_code(settings, [built.sdist], model, work=work, step=step, wheels=wheels)]
        timings["import_check"] = time.perf_counter() - t0
        final = _publish(built.sdist, settings.out)
    return PackageResult(
        sdist=final, sha256=sha256_file(final), bytes=final.stat().st_size, name=built.name, version=built.version,
        prediction_class=settings.prediction_class or "", layout=built.layout, model_dir=model.model_dir,
        checks=tuple(checks), pickles=model.pickles, timings=timings,
    )


def build_sdist(settings: Settings, work: Path) -> tuple[Path, Path | None]:
    """The project's reproducible sdist (and its wheel, when built alongside), no checks."""
    model_dir = settings.model_dir if settings.model_dir.is_dir() else None
    built = _build(settings, model_dir, work)
    return built.sdist, built.wheel


@dataclass(frozen=True)
class _Built:
    sdist: Path
    wheel: Path | None
    name: str
    version: str
    layout: str
    declared: tuple[str, ...] = ()  # a flat layout's modules, declared for setuptools

    def layout_checks(self) -> list[Check]:
        if not self.declared:
            return []
        return [Check("layout", True, "setuptools refused to discover the modules of this flat layout; built "
                      f"with py_modules/packages {', '.join(self.declared)} declared in the sdist's setup.cfg")]


def _build(settings: Settings, model_dir: Path | None, work: Path) -> _Built:
    """Build the normalised sdist (and, without isolation, the wheel built from it)."""
    src = settings.project_dir
    staging = work / "src" / (src.name or "project")
    skip = {settings.out.resolve()}
    if model_dir is not None:
        skip.add(model_dir.resolve())
    copy_project(src, staging, skip)
    bare = is_bare_folder(src)
    if bare:
        bare_layout(staging, settings)

    def build() -> tuple[Path, Path | None]:
        if settings.isolated:
            return build_distribution(staging, "sdist", work / "dist", isolated=True), None
        return build_sdist_and_wheel(staging, work / "dist")

    (sdist, wheel), declared = with_flat_layout(staging, build)
    normalize_sdist(sdist)
    stem = sdist.name[: -len(".tar.gz")]
    name, _, version = stem.rpartition("-")
    if not name:
        raise BuildError(f"The backend produced {sdist.name}, which is not named name-version.tar.gz.")
    return _Built(sdist, wheel, name, version, "bare" if bare else "flat" if declared else "project", declared)


def _publish(sdist: Path, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / sdist.name
    tmp = out_dir / f".{sdist.name}.{os.getpid()}.tmp"
    shutil.copyfile(sdist, tmp)
    os.replace(tmp, final)
    return final
