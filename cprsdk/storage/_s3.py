"""``s3://`` through s3fs, with S3's conditional writes.

Create-only writes send ``If-None-Match: *`` and compare-and-swap writes send ``If-Match: <ETag>``
on PutObject (honoured by AWS S3 since 2024 and by moto); the token is the ETag without quotes.
Reads take the bytes and the ETag from one GetObject, so they always belong together. Endpoint and
credentials come from s3fs/botocore's own configuration (``AWS_ENDPOINT_URL``, ``AWS_*``,
``FSSPEC_S3_*``); listings are not cached, so a read after another process's write sees it.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from fsspec.asyn import sync  # type: ignore[import-untyped]

from cprsdk.storage._base import Blob, ObjectInfo
from cprsdk.storage._errors import AlreadyExists, NotFound, StorageError
from cprsdk.storage._fsspec import FsspecStore, Info

_MD5_ETAG = re.compile(r"[0-9a-f]{32}")
_KMS = {"aws:kms", "aws:kms:dsse"}
_BUCKET_HINT = "Create the bucket, or fix the URI."


def _error_code(exc: BaseException) -> str:
    """The S3 error code behind an exception s3fs translated (it keeps the ClientError as cause)."""
    response = getattr(exc.__cause__, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


async def _get_object(fs: Any, bucket: str, key: str) -> tuple[bytes, str]:
    resp = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    body = resp["Body"]
    try:
        data = await body.read()
    finally:
        body.close()
    return bytes(data), str(resp["ETag"])


class S3Store(FsspecStore):
    _compares_md5 = True  # single-part ETags are MD5s

    def __init__(self, *, fs: Any, root: str, uri: str) -> None:
        super().__init__(fs=fs, root=root, uri=uri)
        self.bucket, _, self.prefix = self.root.partition("/")

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _token(self, info: Info, full: str) -> str:
        return str(info.get("ETag", "")).strip('"')

    def _translate(self, exc: OSError, key: str, *, if_absent: bool, if_token: str | None) -> StorageError:
        code = _error_code(exc)
        if code == "NoSuchBucket":
            return StorageError(f"bucket {self.bucket!r} of {self.uri} does not exist.", hint=_BUCKET_HINT)
        if if_token is not None and code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
            return self._stale(key, if_token, getattr(self._stat(key), "token", None))
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return AlreadyExists(f"{self._where(key)} already exists; it is written only once.")
        return super()._translate(exc, key, if_absent=if_absent, if_token=if_token)

    def _read(self, key: str) -> Blob:
        with self._errors(key):
            data, etag = sync(self.fs.loop, _get_object, self.fs, self.bucket, self._object_key(key))
        return Blob(data=data, token=etag.strip('"'))

    def _write(self, key: str, data: bytes, *, if_absent: bool, if_token: str | None) -> str:
        condition = {"IfNoneMatch": "*"} if if_absent else {"IfMatch": f'"{if_token}"'} if if_token else {}
        with self._errors(key, if_absent=if_absent, if_token=if_token):
            out = self.fs.call_s3(
                "put_object",
                Bucket=self.bucket,
                Key=self._object_key(key),
                Body=data,
                ContentType=_content_type(key),
                **condition,
            )
        self.fs.invalidate_cache(self._full(key))
        return str(out["ETag"]).strip('"')

    def _stat(self, key: str) -> ObjectInfo | None:
        try:
            with self._errors(key):
                head = self.fs.call_s3("head_object", Bucket=self.bucket, Key=self._object_key(key))
        except NotFound:
            return None
        etag = str(head["ETag"]).strip('"')
        return ObjectInfo(key=key, size=int(head["ContentLength"]), token=etag, md5=_md5_of(etag, head))


def _md5_of(etag: str, head: dict[str, Any]) -> str | None:
    """The ETag is the MD5 only for single-part uploads without KMS or customer-key encryption."""
    if not _MD5_ETAG.fullmatch(etag) or head.get("ServerSideEncryption") in _KMS or head.get("SSECustomerAlgorithm"):
        return None
    return etag
