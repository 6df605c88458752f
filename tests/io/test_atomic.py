"""replacing(): the target holds the old file or the whole new one, and no temporary is left behind."""

from __future__ import annotations

import pytest

from genomamba.io.atomic import replacing


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
