"""cprsdk.storage against real servers: gcp-storage-emulator, moto's S3, memory:// and file://."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cprsdk.errors import CprError
from cprsdk.storage import (
    AlreadyExists,
    Blob,
    IntegrityError,
    NotFound,
    PreconditionFailed,
    StorageError,
    Store,
    TransferStats,
    open_store,
    upload_many,
)
from servers import gcs_client


@pytest.fixture
def store(store_uri: str) -> Store:
    return open_store(store_uri)


def is_emulated_gcs(store: Store) -> bool:
    """gcp-storage-emulator ignores ifGenerationMatch (see test_gcs_emulator_ignores_if_generation_match)."""
    return store.uri.startswith("gs://")


def races_are_exact(store: Store) -> bool:
    """Whether concurrent conditional writes to this test server have exactly one winner.

    memory:// and file:// are exact, as are Cloud Storage and AWS S3 themselves. The test servers
    are not: gcp-storage-emulator ignores ifGenerationMatch, so writers that all pass cprsdk's
    up-front generation check all succeed; moto checks If-None-Match / If-Match and then stores the
    object without a lock, so about one race in ten has two winners. Sequential conditional
    writes are exact on both (tested below).
    """
    return store.uri.startswith(("memory://", "file://"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def race(n: int, call: Callable[[int], str]) -> list[str | Exception]:
    """Run ``call(0..n-1)`` in n threads released together; each result or exception, by index."""
    barrier = threading.Barrier(n)
    results: list[str | Exception] = [RuntimeError("did not run")] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def assert_one_winner(store: Store, key: str, results: list[str | Exception], refusal: type[Exception],
                      data: Callable[[int], bytes]) -> None:
    """Of a race() of conditional writes to ``key``: each writer won (a token) or got ``refusal``;
    exactly one won, and its ``data(i)`` is what is stored (on the loose test servers: a winner's)."""
    winners = [i for i, result in enumerate(results) if isinstance(result, str)]
    losers = [result for result in results if isinstance(result, refusal)]
    assert len(winners) + len(losers) == len(results), results
    tokens = [result for result in results if isinstance(result, str)]
    final = store.read(key)
    if not races_are_exact(store):
        assert len(winners) >= 1
        assert final.token in tokens
    else:
        assert len(winners) == 1
        assert final == Blob(data=data(winners[0]), token=tokens[0])


# --- read, write, tokens -------------------------------------------------------------------------


def test_write_then_read_gives_the_bytes_and_the_token_write_returned(store: Store) -> None:
    key = "models/iris/model.json"
    token = store.write(key, b'{"default": "v1"}')

    assert store.read(key) == Blob(data=b'{"default": "v1"}', token=token)
    info = store.stat(key)
    assert info is not None and (info.key, info.size, info.token) == (key, 17, token)
    assert info.md5 in (None, hashlib.md5(b'{"default": "v1"}').hexdigest())
    assert store.exists(key)

    new_token = store.write(key, b'{"default": "v2"}')  # same size, new bytes: a new token
    assert new_token != token
    assert store.read(key) == Blob(data=b'{"default": "v2"}', token=new_token)


def test_reading_a_missing_key_raises_not_found_naming_the_object(store: Store) -> None:
    with pytest.raises(NotFound) as caught:
        store.read("models/nope/model.json")

    assert str(caught.value) == f"{store.url('models/nope/model.json')} does not exist."
    assert isinstance(caught.value, CprError) and caught.value.status_code == 404
    assert store.stat("models/nope/model.json") is None
    assert not store.exists("models/nope/model.json")


def test_url_is_the_full_uri_and_opens_the_same_store(store: Store) -> None:
    store.write("a/b.txt", b"hi")

    assert store.url("a/b.txt") == f"{store.uri}/a/b.txt"
    assert open_store(store.uri).read("a/b.txt").data == b"hi"


@pytest.mark.parametrize("kind", ["gcs", "s3", "memory"])
def test_a_store_at_the_top_of_a_bucket_uses_plain_keys(kind: str, request: pytest.FixtureRequest) -> None:
    uri = str(request.getfixturevalue(f"{kind}_uri"))
    top = "memory://" if kind == "memory" else uri.rsplit("/", 1)[0]
    store = open_store(top)
    store.write("a/b.json", b"{}")

    assert [info.key for info in store.list()] == ["a/b.json"]
    assert store.url("a/b.json") == ("memory://a/b.json" if kind == "memory" else f"{top}/a/b.json")
    assert open_store(store.url("a")).read("b.json").data == b"{}"


# --- create-only -----------------------------------------------------------------------------------


def test_create_only_write_refuses_an_existing_object_and_keeps_it(store: Store) -> None:
    token = store.write("versions/v1.json", b"first", if_absent=True)

    with pytest.raises(AlreadyExists, match="versions/v1.json already exists") as caught:
        store.write("versions/v1.json", b"second", if_absent=True)

    assert caught.value.status_code == 409
    assert store.read("versions/v1.json") == Blob(data=b"first", token=token)


def test_create_only_race_has_exactly_one_winner(store: Store) -> None:
    results = race(8, lambda i: store.write("versions/v1.json", f"writer {i}".encode(), if_absent=True))

    assert_one_winner(store, "versions/v1.json", results, AlreadyExists, lambda i: f"writer {i}".encode())


def test_gcs_emulator_ignores_if_generation_match(gcs_uri: str) -> None:
    """Why the create-only race above is loose on gs:// in tests: the emulator itself overwrites."""
    store = open_store(gcs_uri)
    store.write("x", b"first", if_absent=True)
    client = gcs_client()
    bucket, _, root = gcs_uri.removeprefix("gs://").partition("/")
    client.bucket(bucket).blob(f"{root}/x").upload_from_string(b"second", if_generation_match=0)
    client.close()

    assert store.read("x").data == b"second"  # real Cloud Storage answers 412 here


# --- compare-and-swap -------------------------------------------------------------------------------


def test_compare_and_swap_replaces_only_the_version_that_was_read(store: Store) -> None:
    first = store.write("models/iris.json", b'{"default": "v1"}')
    second = store.write("models/iris.json", b'{"default": "v2"}', if_token=first)

    assert store.read("models/iris.json") == Blob(data=b'{"default": "v2"}', token=second)
    with pytest.raises(PreconditionFailed) as caught:
        store.write("models/iris.json", b'{"default": "v3"}', if_token=first)

    message = str(caught.value)
    assert store.url("models/iris.json") in message and first in message and second in message
    assert caught.value.status_code == 412
    assert store.read("models/iris.json") == Blob(data=b'{"default": "v2"}', token=second)


def test_compare_and_swap_of_a_deleted_object_fails(store: Store) -> None:
    token = store.write("models/iris.json", b"{}")
    store.delete("models/iris.json")

    with pytest.raises(PreconditionFailed, match="it does not exist"):
        store.write("models/iris.json", b"{}", if_token=token)
    assert not store.exists("models/iris.json")


def test_compare_and_swap_race_has_exactly_one_winner(store: Store) -> None:
    base = store.write("models/iris.json", b"v0")
    results = race(8, lambda i: store.write("models/iris.json", f"v{i + 1}".encode(), if_token=base))

    assert_one_winner(store, "models/iris.json", results, PreconditionFailed, lambda i: f"v{i + 1}".encode())


def test_a_write_takes_create_only_or_compare_and_swap_not_both(store: Store) -> None:
    with pytest.raises(StorageError, match="if_absent or if_token, not both"):
        store.write("k", b"x", if_absent=True, if_token="1")
    assert not store.exists("k")


# --- list, stat, delete ------------------------------------------------------------------------------


def test_list_stat_and_delete(store: Store, store_uri: str) -> None:
    objects = {
        "blobs/sha256/aa": b"aaa",
        "blobs/sha256/bb": b"bbbbb",
        "models/iris/model.json": b"{}",
        "models/iris2/model.json": b"{ }",
    }
    tokens = {key: store.write(key, data) for key, data in objects.items()}
    open_store(store_uri + "-sibling").write("blobs/sha256/zz", b"another root")

    assert [(i.key, i.size, i.token) for i in store.list()] == [
        (key, len(objects[key]), tokens[key]) for key in sorted(objects)
    ]
    assert [i.key for i in store.list("models/iris/")] == ["models/iris/model.json"]
    assert [i.key for i in store.list("models/iris")] == ["models/iris/model.json", "models/iris2/model.json"]
    assert store.list("nothing/") == []

    store.delete("blobs/sha256/aa")
    store.delete("blobs/sha256/aa")  # deleting what is gone is not an error
    assert store.stat("blobs/sha256/aa") is None
    assert [i.key for i in store.list("blobs/")] == ["blobs/sha256/bb"]


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../escape", "a/./b", "a\\b", "dir/", "x.cprsdk-lock"])
def test_keys_that_could_escape_the_root_are_refused(key: str, tmp_path: Path) -> None:
    store = open_store(str(tmp_path))

    with pytest.raises(StorageError, match="storage key"):
        store.write(key, b"x")
    assert list(tmp_path.iterdir()) == []


# --- upload_file and download_file -----------------------------------------------------------------


def test_upload_and_download_roundtrip_verified_by_sha256(store: Store, tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 17)  # above 8 MiB: a resumable upload on gs://
    digest = sha256(data)
    src = make_file(tmp_path / "model", "model.joblib", data)

    token = store.upload_file(src, f"blobs/{digest}", if_absent=True, sha256=digest)

    info = store.stat(f"blobs/{digest}")
    assert info is not None and (info.size, info.token) == (len(data), token)
    assert info.md5 in (None, hashlib.md5(data).hexdigest())
    dest = tmp_path / "download" / "model.joblib"
    store.download_file(f"blobs/{digest}", dest, sha256=digest)
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["model.joblib"]


def test_create_only_upload(store: Store, tmp_path: Path) -> None:
    src = make_file(tmp_path, "a.bin", b"content")
    store.upload_file(src, "blobs/a", if_absent=True)

    if is_emulated_gcs(store):  # upload_file relies on ifGenerationMatch=0 alone; the emulator ignores it
        assert store.upload_file(src, "blobs/a", if_absent=True)
    else:
        with pytest.raises(AlreadyExists, match="blobs/a already exists"):
            store.upload_file(src, "blobs/a", if_absent=True)
    assert store.read("blobs/a").data == b"content"


@pytest.mark.parametrize("if_absent", [False, True], ids=["overwrite", "create-only"])
def test_upload_refuses_a_file_that_no_longer_matches_its_sha256(
    store: Store, tmp_path: Path, if_absent: bool
) -> None:
    src = make_file(tmp_path, "model.bin", b"edited after hashing")
    expected = sha256(b"the bytes that were hashed")

    with pytest.raises(IntegrityError) as caught:
        store.upload_file(src, f"blobs/{expected}", if_absent=if_absent, sha256=expected)

    message = str(caught.value)
    assert str(src) in message and expected in message and sha256(b"edited after hashing") in message
    assert not store.exists(f"blobs/{expected}")


def test_an_overwrite_from_a_changed_file_keeps_the_good_object(store: Store, tmp_path: Path) -> None:
    good = b"good bytes"
    key = f"blobs/{sha256(good)}"
    store.upload_file(make_file(tmp_path, "good.bin", good), key, sha256=sha256(good))

    with pytest.raises(IntegrityError, match="changed after it was hashed"):
        store.upload_file(make_file(tmp_path, "changed.bin", b"changed bytes"), key, sha256=sha256(good))

    assert store.read(key).data == good


def test_uploading_a_missing_file_names_it(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=f"cannot upload {tmp_path / 'nope.bin'}"):
        store.upload_file(tmp_path / "nope.bin", "blobs/x")
    assert not store.exists("blobs/x")


def test_upload_digests_cover_each_byte_once_however_the_client_seeks(tmp_path: Path) -> None:
    """Cloud Storage's resumable uploads seek back and re-read a chunk after a failed request."""
    from cprsdk.storage._base import HashingReader

    data = os.urandom(10_000)
    with open(make_file(tmp_path, "f.bin", data), "rb") as fh:
        reader = HashingReader(fh, sha256=True, md5=True)
        reader.read(4000)
        reader.seek(1000)
        reader.read(5000)  # re-reads 1000..4000, then 3000 new bytes
        reader.seek(0, os.SEEK_END)
        reader.finish()  # what the client never read

    assert (reader.size, reader.sha256, reader.md5) == (10_000, sha256(data), hashlib.md5(data).hexdigest())


def test_a_flipped_byte_in_storage_is_caught_on_download(store: Store, tmp_path: Path) -> None:
    data = os.urandom(64 * 1024)
    digest = sha256(data)
    key = f"blobs/{digest}"
    store.upload_file(make_file(tmp_path, "model.bin", data), key, sha256=digest)
    flipped = bytearray(data)
    flipped[1000] ^= 0x01
    store.write(key, bytes(flipped))

    dest = tmp_path / "download" / "model.bin"
    with pytest.raises(IntegrityError) as caught:
        store.download_file(key, dest, sha256=digest)

    message = str(caught.value)
    assert store.url(key) in message and digest in message and sha256(bytes(flipped)) in message
    assert os.listdir(dest.parent) == []  # neither the file nor a partial one


def test_a_failed_download_leaves_the_previous_file_untouched(store: Store, tmp_path: Path) -> None:
    dest = make_file(tmp_path / "download", "model.bin", b"previous")

    with pytest.raises(NotFound):
        store.download_file("blobs/missing", dest)
    store.write("blobs/other", b"other bytes")
    with pytest.raises(IntegrityError):
        store.download_file("blobs/other", dest, sha256=sha256(b"something else"))

    assert dest.read_bytes() == b"previous"
    assert os.listdir(dest.parent) == ["model.bin"]


def test_download_without_sha256_still_goes_through_a_temporary_name(store: Store, tmp_path: Path) -> None:
    store.write("notes.txt", b"plain")
    dest = tmp_path / "deep" / "folder" / "notes.txt"

    store.download_file("notes.txt", dest)

    assert dest.read_bytes() == b"plain"
    assert os.listdir(dest.parent) == ["notes.txt"]


# --- upload_many --------------------------------------------------------------------------------------


def test_upload_many_uploads_each_blob_once_and_reports_it(store: Store, tmp_path: Path) -> None:
    datas = [os.urandom(1000 * (i + 1)) for i in range(6)]
    items = [(make_file(tmp_path, f"f{i}.bin", d), f"blobs/{sha256(d)}") for i, d in enumerate(datas)]

    first = upload_many(store, items[:4], workers=4)
    assert isinstance(first, TransferStats) and first.seconds >= 0
    assert (first.uploaded_files, first.uploaded_bytes, first.skipped_files, first.skipped_bytes) == (
        4,
        sum(len(d) for d in datas[:4]),
        0,
        0,
    )

    second = upload_many(store, items, workers=4)
    assert (second.uploaded_files, second.uploaded_bytes, second.skipped_files, second.skipped_bytes) == (
        2,
        sum(len(d) for d in datas[4:]),
        4,
        sum(len(d) for d in datas[:4]),
    )
    for path, key in items:
        assert store.read(key).data == path.read_bytes()

    forced = upload_many(store, items, skip_existing=False)
    assert (forced.uploaded_files, forced.skipped_files) == (6, 0)


def test_upload_many_replaces_an_object_of_the_wrong_size(store: Store, tmp_path: Path) -> None:
    data = b"the real content"
    key = f"blobs/{sha256(data)}"
    store.write(key, b"truncated")  # e.g. left by a tool that does not write atomically

    stats = upload_many(store, [(make_file(tmp_path, "m.bin", data), key)])

    assert (stats.uploaded_files, stats.skipped_files) == (1, 0)
    assert store.read(key).data == data


def test_upload_many_names_a_missing_file_before_sending_anything(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    present = make_file(tmp_path, "present.bin", b"x")

    with pytest.raises(StorageError, match="missing.bin"):
        upload_many(store, [(present, "a"), (tmp_path / "missing.bin", "b")])
    assert store.list() == []


def test_upload_many_of_nothing_sends_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stats = upload_many(open_store(str(tmp_path)), [], progress=True)

    assert (stats.uploaded_files, stats.uploaded_bytes, stats.skipped_files, stats.skipped_bytes) == (0, 0, 0, 0)
    assert capsys.readouterr().err == ""


def test_upload_many_draws_a_progress_bar_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(str(tmp_path / "store"))
    items = [(make_file(tmp_path, f"f{i}.bin", bytes(100 * (i + 1))), f"k{i}") for i in range(3)]

    upload_many(store, items)  # auto: stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""

    upload_many(store, items, skip_existing=False, progress=True)
    err = capsys.readouterr().err
    assert "3/3 files" in err and "100%" in err and "600 B/600 B" in err
    assert err.endswith("\n") and "\r" in err


# --- open_store ---------------------------------------------------------------------------------------


def test_plain_paths_and_file_uris_open_the_same_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    expected = "file://" + (tmp_path / "registry").as_posix()

    assert open_store("registry").uri == expected
    assert open_store(str(tmp_path / "registry")).uri == expected
    assert open_store(expected + "/").uri == expected
    open_store("registry").write("a.txt", b"x")
    assert (tmp_path / "registry" / "a.txt").read_bytes() == b"x"


def test_an_unknown_scheme_is_named() -> None:
    with pytest.raises(StorageError, match="unknown storage scheme 'nosuch' in 'nosuch://bucket/x'"):
        open_store("nosuch://bucket/x")


def test_a_missing_s3_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if s3fs were not installed

    with pytest.raises(StorageError, match=r"s3:// URIs need s3fs.*pip install 'cprsdk\[s3\]'"):
        open_store("s3://bucket/registry")


def test_a_missing_gcs_client_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)

    with pytest.raises(StorageError, match="gs:// URIs need google.cloud.storage.*pip install google-cloud-storage"):
        open_store("gs://bucket/registry")


def test_a_missing_fsspec_backend_says_what_to_install() -> None:
    with pytest.raises(StorageError, match="abfs:// URIs need a backend that is not installed: Install adlfs"):
        open_store("abfs://container/registry")


def test_uris_without_a_bucket_are_refused() -> None:
    with pytest.raises(StorageError, match="names no bucket"):
        open_store("gs://")
    with pytest.raises(StorageError, match="names no bucket"):
        open_store("s3://")


@pytest.mark.parametrize("kind", ["gcs", "s3"])
def test_a_missing_bucket_is_named_on_write(kind: str, request: pytest.FixtureRequest) -> None:
    uri = str(request.getfixturevalue(f"{kind}_uri"))
    scheme, rest = uri.split("://")
    store = open_store(f"{scheme}://no-such-bucket-{rest.partition('/')[0]}/root")

    with pytest.raises(StorageError, match="bucket 'no-such-bucket-.*' of .* does not exist"):
        store.write("k", b"x")


# --- the local store ---------------------------------------------------------------------------------


def test_local_store_leaves_no_temporary_files_and_lists_no_lock_files(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = open_store(str(root))
    token = store.write("models/iris.json", b"1")
    store.write("models/iris.json", b"2", if_token=token)
    store.upload_file(make_file(tmp_path / "src", "m.bin", b"m"), "blobs/m", if_absent=True)
    with pytest.raises(AlreadyExists):
        store.write("blobs/m", b"again", if_absent=True)
    store.delete("blobs/m")

    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert not [name for name in on_disk if ".cprsdk-tmp-" in name or ".cprsdk-lock" in name]
    assert "models/iris.json" in on_disk
    assert [i.key for i in store.list()] == ["models/iris.json"]


def test_local_compare_and_swap_is_atomic_across_processes(tmp_path: Path) -> None:
    """Four processes each add 1 to a counter 40 times, by read + compare-and-swap; none is lost."""
    store = open_store(str(tmp_path))
    store.write("counter", b"0")
    script = textwrap.dedent(
        """
        import sys
        from cprsdk.storage import PreconditionFailed, open_store
        store = open_store(sys.argv[1])
        done = 0
        while done < 40:
            blob = store.read("counter")
            try:
                store.write("counter", str(int(blob.data) + 1).encode(), if_token=blob.token)
                done += 1
            except PreconditionFailed:
                pass
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)]) for _ in range(4)]

    assert [proc.wait(timeout=60) for proc in procs] == [0, 0, 0, 0]
    assert store.read("counter").data == b"160"
