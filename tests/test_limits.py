"""Quotas, with messages that list the largest files and say which setting to raise."""

from __future__ import annotations

from pathlib import Path

import pytest

from cprsdk import QuotaError
from cprsdk.packaging.limits import check_code_size, check_model_dir


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.truncate(size)


def test_oversized_model_dir_lists_largest_files(tmp_path: Path) -> None:
    _sparse(tmp_path / "model" / "scaler.pkl", 580_000_000)
    _sparse(tmp_path / "model" / "vocab.txt", 32_000_000)
    with pytest.raises(QuotaError) as info:
        check_model_dir(tmp_path / "model", max_mb=250, max_files=1000, base=tmp_path, source="default")
    assert info.value.message == (
        "model/ is 612 MB, over the 250 MB model quota. Largest files: model/scaler.pkl (580 MB), "
        "model/vocab.txt (32 MB)."
    )
    assert info.value.hint == "Move large files out, or raise max_model_mb (default)."


def test_file_count_quota(tmp_path: Path) -> None:
    for i in range(4):
        _sparse(tmp_path / "model" / f"f{i}", 1)
    with pytest.raises(QuotaError, match=r"model/ has 4 files, over the 3-file model quota"):
        check_model_dir(tmp_path / "model", max_mb=250, max_files=3, base=tmp_path, source="default")
    stats = check_model_dir(tmp_path / "model", max_mb=250, max_files=4, base=tmp_path, source="default")
    assert stats.total_bytes == 4


def test_code_quota(tmp_path: Path) -> None:
    _sparse(tmp_path / "a.tar.gz", 3_000_000)
    with pytest.raises(QuotaError) as info:
        check_code_size([tmp_path / "a.tar.gz"], max_mb=2, source="flag --max-code-mb")
    assert "over the 2 MB code quota: a.tar.gz (3.0 MB)" in info.value.message
    assert "raise max_code_mb (flag --max-code-mb)" in str(info.value.hint)
