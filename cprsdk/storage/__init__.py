"""Object storage: one small interface over Cloud Storage and every fsspec filesystem.

``open_store(uri)`` returns a :class:`Store` rooted at the URI; keys are ``/``-separated paths
relative to it. Every write is atomic; ``if_absent`` makes it create-only and ``if_token``
compare-and-swap. How each backend keeps those promises:

    backend        token                 create-only               compare-and-swap
    gs://          generation            ifGenerationMatch=0       ifGenerationMatch=<token>
    s3://          ETag                  If-None-Match: *          If-Match: <ETag>
    file:// path   mtime_ns-size-inode   os.link of a temp file    fcntl lock on a sidecar file
    memory://      MD5 of the bytes      process-wide lock         process-wide lock
    other fsspec   ETag/generation/mtime backend's mode="create"   check, then write (not atomic)

Errors::

    CprError
    └── StorageError          a storage URI, key or backend call failed
        ├── NotFound          the object does not exist
        ├── AlreadyExists     a create-only write met an existing object
        ├── PreconditionFailed a compare-and-swap write met another version
        └── IntegrityError    bytes do not match their checksum
"""

from __future__ import annotations

from cprsdk.storage._base import Blob, ObjectInfo, Store
from cprsdk.storage._errors import AlreadyExists, IntegrityError, NotFound, PreconditionFailed, StorageError
from cprsdk.storage._open import open_store
from cprsdk.storage._transfer import TransferStats, upload_many

__all__ = [
    "AlreadyExists",
    "Blob",
    "IntegrityError",
    "NotFound",
    "ObjectInfo",
    "PreconditionFailed",
    "StorageError",
    "Store",
    "TransferStats",
    "open_store",
    "upload_many",
]
