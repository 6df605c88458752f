"""genomamba.io.directories: folders made for an output are removed again when it fails."""

from __future__ import annotations

import pytest

from genomamba.io.directories import fresh_directory, made_directories


def test_made_directories_removes_only_the_empty_folders_it_made(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(RuntimeError), made_directories(tmp_path / "a" / "b" / "c") as made:
        assert made.is_dir()
        raise RuntimeError("the output failed")
    assert [p.name for p in tmp_path.iterdir()] == ["a"] and list((tmp_path / "a").iterdir()) == []
    with made_directories(tmp_path / "a" / "b") as made:  # success: kept
        (made / "out.tsv").write_text("x")
    assert (tmp_path / "a" / "b" / "out.tsv").is_file()


@pytest.mark.parametrize("before", ["absent", "empty", "full"])
def test_fresh_directory_discards_a_failed_run(tmp_path, before):
    run = tmp_path / "runs" / "r"
    if before != "absent":
        run.mkdir(parents=True)
    if before == "full":
        (run / "notes.txt").write_text("mine")
    with pytest.raises(OSError), fresh_directory(run):
        run.mkdir(parents=True, exist_ok=True)
        (run / "run_config.json").write_text("{}")
        (run / "checkpoints").mkdir()
        raise OSError(28, "No space left on device")
    if before == "absent":
        assert not (tmp_path / "runs").exists()
    elif before == "empty":
        assert run.is_dir() and list(run.iterdir()) == []
    else:  # what was there is not the run's to remove
        assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "notes.txt", "run_config.json"]


def test_fresh_directory_keeps_what_can_be_resumed(tmp_path):
    run = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt), fresh_directory(run, keep=lambda: (run / "ckpt").exists()):
        run.mkdir()
        (run / "ckpt").write_text("state")
        raise KeyboardInterrupt
    assert (run / "ckpt").is_file()
