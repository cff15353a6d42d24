"""``gs://`` through google-cloud-storage.

- Tokens are object generations. Create-only writes send ``ifGenerationMatch=0``, compare-and-swap
  writes ``ifGenerationMatch=<token>``; both also check the current generation first, so a stale
  write fails early with the current version in its message.
- Uploads send a CRC32C for the service to check and are compared with the stored MD5 afterwards;
  files above 8 MiB go as resumable uploads in 16 MiB chunks. Downloads are checked by CRC32C.
- Retries: reads, listings and deletes use the library's default retry; writes and uploads are
  retried only when a generation precondition guards them (``DEFAULT_RETRY_IF_GENERATION_SPECIFIED``).
- Configuration is the library's own: application default credentials, or ``STORAGE_EMULATOR_HOST``
  (then anonymous credentials and no project, as the client does for emulators).

Known limitation of gcp-storage-emulator (the test server): it ignores ``ifGenerationMatch``.
Against it the up-front generation check is the only check, so two writers racing past it both
succeed; create-only and compare-and-swap are exact against real Cloud Storage.
"""

from __future__ import annotations

import base64
import builtins
import mimetypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[import-untyped]
from google.cloud.storage.retry import (  # type: ignore[import-untyped]
    DEFAULT_RETRY,
    DEFAULT_RETRY_IF_GENERATION_SPECIFIED,
)

from cprsdk.storage._base import Blob, HashingReader, ObjectInfo, Sink, Store, md5_hex
from cprsdk.storage._errors import AlreadyExists, IntegrityError, NotFound, StorageError

try:  # google-cloud-storage >= 3
    from google.cloud.storage.exceptions import DataCorruption  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - google-cloud-storage 2.x
    from google.resumable_media import DataCorruption

RESUMABLE_CHUNK = 16 * 1024 * 1024  # one PUT for files up to 16 MiB (measured: bench/bench_deploy.py --variants)
_BUCKET_HINT = "Create the bucket, or fix the URI."
_CREDENTIALS_HINT = (
    "Check the credentials (`gcloud auth application-default login` or GOOGLE_APPLICATION_CREDENTIALS) "
    "and the bucket's permissions; set STORAGE_EMULATOR_HOST to use an emulator."
)


def default_client() -> Any:
    """A client configured only by the environment, as google-cloud-storage reads it."""
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT"), credentials=anonymous)
    return storage.Client(project=None)


def _md5_hex(b64: str | None) -> str | None:
    return base64.b64decode(b64).hex() if b64 else None


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class GcsStore(Store):
    _token_name = "generation"

    def __init__(self, *, bucket: str, root: str, client: Any = None) -> None:
        super().__init__(uri=f"gs://{bucket}/{root}" if root else f"gs://{bucket}")
        self.bucket_name = bucket
        self.root = root
        self._client = client
        self._client_lock = threading.Lock()
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            # gcp-storage-emulator answers one request at a time with a listen backlog of 5; more
            # concurrent connections than that wait a second for a SYN retransmit.
            self.max_workers = 4

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = default_client()
                except auth_exc.GoogleAuthError as exc:
                    raise StorageError(f"no Google credentials for {self.uri}: {exc}", hint=_CREDENTIALS_HINT) from exc
            return self._client

    def _blob(self, key: str, **kwargs: Any) -> Any:
        return self.client.bucket(self.bucket_name).blob(self._name(key), **kwargs)

    def _name(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    @contextmanager
    def _errors(self, key: str, *, writing: bool = False, if_token: str | None = None) -> Iterator[None]:
        try:
            yield
        except (gexc.GoogleAPICallError, auth_exc.GoogleAuthError, DataCorruption, OSError) as exc:
            raise self._translate(exc, key, writing=writing, if_token=if_token) from exc

    def _translate(self, exc: Exception, key: str, *, writing: bool, if_token: str | None) -> StorageError:
        where = self._where(key)
        if isinstance(exc, gexc.NotFound) and writing:
            return StorageError(f"bucket {self.bucket_name!r} of {self.uri} does not exist.", hint=_BUCKET_HINT)
        if isinstance(exc, gexc.NotFound):
            return NotFound(f"{where} does not exist.")
        if isinstance(exc, gexc.PreconditionFailed) and if_token is not None:
            return self._stale(key, if_token, getattr(self._stat(key), "token", None))
        if isinstance(exc, gexc.PreconditionFailed):
            return AlreadyExists(f"{where} already exists; it is written only once.")
        if isinstance(exc, (gexc.Forbidden, gexc.Unauthorized, auth_exc.GoogleAuthError)):
            return StorageError(f"permission denied for {where}: {exc}", hint=_CREDENTIALS_HINT)
        if isinstance(exc, DataCorruption):
            return IntegrityError(f"{where}: checksum mismatch in transfer ({exc}).", hint="Retry the transfer.")
        return StorageError(f"Cloud Storage call for {where} failed: {exc}")


    def _info(self, key: str, blob: Any) -> ObjectInfo:
        return ObjectInfo(key=key, size=int(blob.size), token=str(blob.generation), md5=_md5_hex(blob.md5_hash))

    def _read(self, key: str) -> Blob:
        for _ in range(3):
            blob = self._blob(key)
            with self._errors(key):
                data = blob.download_as_bytes(checksum="crc32c", retry=DEFAULT_RETRY)
            if blob.generation is not None:
                return Blob(data=data, token=str(blob.generation))
            # gcp-storage-emulator sends no x-goog-generation: take the generation whose MD5 is these bytes.
            info = self._stat(key)
            if info is None:
                raise NotFound(f"{self.url(key)} does not exist.")
            if info.md5 == md5_hex(data):
                return Blob(data=data, token=info.token)
        raise StorageError(f"{self.url(key)} kept changing while it was read.", hint="Try again.")

    def _precondition(self, key: str, *, if_absent: bool, if_token: str | None) -> int | None:
        """The generation to require, checked here first (the only check on gcp-storage-emulator)."""
        if not if_absent and if_token is None:
            return None
        current = self._stat(key)
        if if_token is None:
            if current is not None:
                raise AlreadyExists(f"{self.url(key)} already exists; it is written only once.")
            return 0
        if not if_token.isdigit() or current is None or current.token != if_token:
            raise self._stale(key, if_token, None if current is None else current.token)
        return int(if_token)

    def _write(self, key: str, data: bytes, *, if_absent: bool, if_token: str | None) -> str:
        generation = self._precondition(key, if_absent=if_absent, if_token=if_token)
        blob = self._blob(key)
        with self._errors(key, writing=True, if_token=if_token):
            blob.upload_from_string(
                data,
                content_type=_content_type(key),
                if_generation_match=generation,
                checksum="crc32c",
                retry=DEFAULT_RETRY_IF_GENERATION_SPECIFIED,
            )
        return str(blob.generation)

    def _stat(self, key: str) -> ObjectInfo | None:
        with self._errors(key):
            blob = self.client.bucket(self.bucket_name).get_blob(self._name(key), retry=DEFAULT_RETRY)
        return None if blob is None else self._info(key, blob)

    def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        start = f"{self.root}/" if self.root else ""
        with self._errors(prefix):
            blobs = list(self.client.list_blobs(self.bucket_name, prefix=start + prefix, retry=DEFAULT_RETRY))
        return [self._info(blob.name[len(start) :], blob) for blob in blobs if not blob.name.endswith("/")]

    def _delete(self, key: str) -> None:
        try:
            with self._errors(key):
                self._blob(key).delete(retry=DEFAULT_RETRY)
        except NotFound:
            pass

    def _upload(self, source: HashingReader, path: Path, key: str, *, if_absent: bool) -> ObjectInfo:
        blob = self._blob(key, chunk_size=RESUMABLE_CHUNK)
        with self._errors(key, writing=True):
            blob.upload_from_file(
                source,
                size=path.stat().st_size,
                content_type=_content_type(key),
                if_generation_match=0 if if_absent else None,
                checksum="crc32c",
                retry=DEFAULT_RETRY_IF_GENERATION_SPECIFIED,
            )
        return self._info(key, blob)

    def _download(self, key: str, sink: Sink) -> None:
        with self._errors(key):
            self._blob(key).download_to_file(sink, checksum="crc32c", retry=DEFAULT_RETRY)
