"""replacing() and staged_directory(): the target holds the old file (directory) or the whole new one,
and no temporary is left behind."""

from __future__ import annotations

import os
import stat

import pytest

from genomamba.io.atomic import TEMPORARY_NAME, move_directory_into_place, replacing, staged_directory


def test_completed_block_replaces_the_target(tmp_path):
    target = tmp_path / "out.tsv"
    target.write_text("old\n")
    with replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # not before the block completes
    assert target.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv"]


def test_failed_block_leaves_the_target_and_no_temporary(tmp_path):
    target = tmp_path / "out.tsv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv"]


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("existing", [False, True])
def test_staged_directory_replaces_the_target_with_the_umask_mode(tmp_path, existing):
    target = tmp_path / "model"
    if existing:
        target.mkdir()
        (target / "old.txt").write_text("old")
    old_umask = os.umask(0o027)
    try:
        with staged_directory(target) as tmp:
            assert TEMPORARY_NAME.match(tmp.name) and _mode(tmp) == 0o700  # private while written
            (tmp / "new.txt").write_text("new")
            assert not (target / "new.txt").exists()
            move_directory_into_place(tmp, target)
    finally:
        os.umask(old_umask)
    assert [p.name for p in target.iterdir()] == ["new.txt"] and _mode(target) == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_failed_staged_directory_leaves_the_target_and_no_temporary(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_directory(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
