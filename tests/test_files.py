"""The one atomic-write helper: never a half file, never a shared temp name."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.files import atomic_path


def test_two_writes_to_one_path_do_not_share_a_temp_file(tmp_path: Path):
    out = tmp_path / "clip.mp4"
    with atomic_path(out) as first, atomic_path(out) as second:
        assert first != second and first.suffix == second.suffix == ".mp4"  # PyAV/Pillow pick formats by suffix
        first.write_bytes(b"first")
        second.write_bytes(b"second")
    assert out.read_bytes() == b"first"  # the outer block finished last
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_a_failed_write_leaves_nothing(tmp_path: Path):
    out = tmp_path / "sub" / "clip.gif"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder died")
    assert list((tmp_path / "sub").iterdir()) == []
