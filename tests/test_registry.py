"""The registry: immutable versions written last and create-only, defaults by compare-and-swap."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cprsdk import ConfigError
from cprsdk.registry.manifest import Manifest
from cprsdk.registry.registry import Registry, RegistryError
from cprsdk.storage import IntegrityError


def _manifest(model: str, version: str, **extra: object) -> Manifest:
    return Manifest.from_json({"model": model, "name": version, "predictionClass": "predictor.MyPredictor",
                               "files": [], "packages": [], **extra}, source="of the test")


def test_first_version_becomes_default_later_ones_only_when_asked(registry: Registry) -> None:
    registry.create_model("iris")
    registry.publish_version(_manifest("iris", "v1"))
    registry.publish_version(_manifest("iris", "v2"))
    assert registry.get_model("iris").default_version == "v1"
    assert [(v["name"], v["isDefault"]) for v in registry.describe_versions("iris")] == [("v1", True), ("v2", False)]
    registry.publish_version(_manifest("iris", "v3"), set_default=True)
    assert registry.get_model("iris").default_version == "v3"
    registry.set_default("iris", "v2")
    assert registry.describe_version("iris", "v2")["isDefault"] is True


def test_a_version_name_is_used_once(registry: Registry) -> None:
    registry.create_model("iris")
    registry.publish_version(_manifest("iris", "v1", description="first"))
    with pytest.raises(RegistryError, match="Version 'v1' of model 'iris' exists already") as info:
        registry.publish_version(_manifest("iris", "v1", description="second"))
    assert info.value.status_code == 409
    assert registry.get_version("iris", "v1").description == "first"


def test_concurrent_publishes_exactly_one_wins(registry: Registry) -> None:
    registry.create_model("iris")
    outcomes: dict[int, str] = {}

    def attempt(i: int) -> None:
        try:
            registry.publish_version(_manifest("iris", "v1", description=f"deploy {i}"))
            outcomes[i] = "won"
        except RegistryError as exc:
            outcomes[i] = exc.message

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, o in outcomes.items() if o == "won"]
    assert all("exists already" in o for i, o in outcomes.items() if i not in winners)
    stored = registry.get_version("iris", "v1").description
    if registry.uri.startswith(("gs://", "s3://")):
        # The GCS emulator ignores ifGenerationMatch and moto checks If-None-Match without a lock,
        # so two writers can both land; the read-back still makes the stored manifest a winner's.
        assert winners and stored in {f"deploy {i}" for i in winners}
    else:
        assert len(winners) == 1
        assert stored == f"deploy {winners[0]}"


def test_concurrent_default_changes_are_never_lost(registry: Registry) -> None:
    registry.create_model("iris")
    for v in ("a", "b", "c", "d"):
        registry.publish_version(_manifest("iris", v))
    threads = [threading.Thread(target=registry.set_default, args=("iris", v)) for v in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.get_model("iris").default_version in set("abcd")


@pytest.mark.parametrize("kind", ["memory", "file"])  # stores whose compare-and-swap is atomic
def test_delete_racing_set_default_never_leaves_a_dangling_default(kind: str, request: pytest.FixtureRequest) -> None:
    registry = Registry(request.getfixturevalue(f"{kind}_uri"))
    registry.create_model("iris")
    for round_ in range(10):
        registry.publish_version(_manifest("iris", f"a{round_}"), set_default=True)
        registry.publish_version(_manifest("iris", f"b{round_}"))
        threads = [threading.Thread(target=_ignore, args=(registry.delete_version, "iris", f"b{round_}")),
                   threading.Thread(target=_ignore, args=(registry.set_default, "iris", f"b{round_}"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        default = registry.get_model("iris").default_version
        assert default is None or registry.version_exists("iris", default)


def _ignore(fn: Callable[..., object], *args: object) -> None:
    """Call ``fn``; a RegistryError (the other thread won) is an expected outcome."""
    with contextlib.suppress(RegistryError):
        fn(*args)


def test_deleting_the_default_with_others_left_is_refused(registry: Registry) -> None:
    registry.create_model("iris")
    registry.publish_version(_manifest("iris", "v1"))
    registry.publish_version(_manifest("iris", "v2"))
    with pytest.raises(RegistryError, match="is the default of model 'iris'") as info:
        registry.delete_version("iris", "v1")
    assert "set-default v2" in str(info.value.hint)
    registry.delete_version("iris", "v2")
    registry.delete_version("iris", "v1")
    assert registry.get_model("iris").default_version is None
    registry.delete_model("iris")
    assert registry.list_models() == []


def test_model_with_versions_cannot_be_deleted(registry: Registry) -> None:
    registry.create_model("iris")
    registry.publish_version(_manifest("iris", "v1"))
    with pytest.raises(RegistryError, match=r"still has 1 version\(s\): v1"):
        registry.delete_model("iris")


def test_names_follow_ai_platform_rules(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="Model name 'my-model' is not valid"):
        registry.create_model("my-model")
    with pytest.raises(RegistryError, match="Model 'nope' does not exist") as info:
        registry.get_model("nope")
    assert info.value.status_code == 404


def test_flipped_byte_is_caught_on_fetch(registry: Registry, tmp_path: Path) -> None:
    from cprsdk.packaging.install import sha256_file

    payload = tmp_path / "weights.bin"
    payload.write_bytes(b"w" * 4096)
    digest = sha256_file(payload)
    registry.store.upload_file(payload, registry.blob_key(digest))
    registry.create_model("iris")
    manifest = registry.publish_version(_manifest("iris", "v1", files=[
        {"path": "weights.bin", "sha256": digest, "size": 4096, "key": registry.blob_key(digest)}]))
    manifest.fetch_files(registry.store, tmp_path / "ok")
    assert (tmp_path / "ok" / "weights.bin").read_bytes() == b"w" * 4096
    registry.store.write(registry.blob_key(digest), b"w" * 4095 + b"x")  # a byte flipped in storage
    with pytest.raises(IntegrityError) as info:
        manifest.fetch_files(registry.store, tmp_path / "bad")
    assert registry.blob_key(digest) in info.value.message
    assert not (tmp_path / "bad" / "weights.bin").exists()
