"""output_lock(): one writer per output (exit 75 for a second), waiting writers, and the removal of
temporaries that killed processes left, checked with real processes killed by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from genomamba.io.atomic import temporary_directory
from genomamba.io.locks import (
    EXIT_TEMPFAIL,
    OutputBusyError,
    lock_file,
    output_lock,
    output_locks,
    pid_alive,
    remove_stale_temporaries,
)

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def killed_writer(code: str, *args: str) -> tuple[int, str]:
    """Run ``code`` (which prints one line once it has made its temporary, then sleeps) in a new
    process, SIGKILL it, and return its pid and the line it printed."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        line = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL and line
    return proc.pid, line


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "shards"
    with output_lock(out):
        assert lock_file(out).read_text().split()[0] == str(os.getpid())
        # flock locks belong to open files, so a second open in this process conflicts like another process
        with pytest.raises(OutputBusyError) as info, output_lock(out):
            pass
    assert info.value.exit_code == EXIT_TEMPFAIL == 75
    assert str(info.value) == (
        f"another genomamba process is writing {out} (pid {os.getpid()}); wait for it or choose "
        "another output"
    )
    assert list(tmp_path.iterdir()) == []  # the lock file goes with the lock
    with output_lock(out):  # and the output can be locked again
        pass


def test_two_spellings_of_one_output_share_one_lock(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with output_lock(tmp_path / "real" / "out.tsv"), pytest.raises(OutputBusyError):
        with output_lock(tmp_path / "link" / ".." / "real" / "out.tsv"):
            pass
    with output_lock(tmp_path / "real" / "out.tsv"), pytest.raises(OutputBusyError):
        with output_lock(tmp_path / "link" / "out.tsv"):
            pass


def test_a_waiting_writer_gets_the_lock_when_the_holder_is_done(tmp_path):
    out = tmp_path / "results.csv"
    events = []

    def second():
        with output_lock(out, wait=True):
            events.append("second")

    with output_lock(out, wait=True):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        events.append("first done")
    thread.join(timeout=10)
    assert events == ["first done", "second"]


def test_missing_parents_are_made_and_removed_again_when_nothing_was_written(tmp_path):
    out = tmp_path / "a" / "b" / "out.tsv"
    with pytest.raises(RuntimeError), output_lock(out):
        assert out.parent.is_dir()
        raise RuntimeError("failed before writing")
    assert list(tmp_path.iterdir()) == []
    with output_lock(out):
        out.write_text("x\n")
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.tsv"]


def test_stdout_and_devices_are_not_locked(tmp_path):
    with output_lock("-"), output_lock("-"), output_lock(os.devnull), output_lock(os.devnull):
        pass
    with output_locks([None, tmp_path / "x.tsv", str(tmp_path / "x.tsv")]):  # repeats locked once
        assert lock_file(tmp_path / "x.tsv").exists()


def test_a_killed_writers_temporary_is_removed_by_the_next_writer(tmp_path):
    out = tmp_path / "out.tsv"
    out.write_text("old\n")
    code = (
        "import sys, time\n"
        "from genomamba.io.atomic import replacing\n"
        "from genomamba.io.locks import output_lock\n"
        "with output_lock(sys.argv[1]), replacing(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    print(tmp, flush=True)\n"
        "    time.sleep(60)\n"
    )
    pid, printed = killed_writer(code, str(out))
    tmp = Path(printed)
    assert tmp.name == f".out.tsv.tmp-{pid}.tsv" and tmp.read_text() == "half"
    notes = []
    with output_lock(out, note=notes.append):  # the dead holder's lock is gone with it
        assert not tmp.exists()
    assert notes == [f"removed 1 temporary of {out}: {tmp.name} (left by killed run(s), pid {pid})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv"] and out.read_text() == "old\n"


def test_temporaries_inside_a_run_directory_are_removed(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from genomamba.io.atomic import temporary_directory\n"
        "tmp = temporary_directory(Path(sys.argv[1]) / 'checkpoints' / 'step-000004')\n"
        "(tmp / 'state.pt').write_bytes(b'half')\n"
        "print(tmp, flush=True)\n"
        "time.sleep(60)\n"
    )
    pid, printed = killed_writer(code, str(run))
    checkpoint_tmp = Path(printed)
    assert checkpoint_tmp.name.startswith(f".step-000004.tmp-{pid}.")
    dead = dead_pid()
    model_tmp = run / f".model.tmp-{dead}.abc123"
    model_tmp.mkdir()
    user_file = run / f"notes.tmp-{dead}"  # not hidden: not a name genomamba writes inside a directory
    user_file.write_text("mine")
    sibling = tmp_path / f"run.tmp-{dead}"  # a token-shard directory being written, beside the output
    sibling.mkdir()
    notes = []
    removed = remove_stale_temporaries(run, note=notes.append)
    assert sorted(removed) == sorted([checkpoint_tmp, model_tmp, sibling])
    assert not checkpoint_tmp.exists() and not model_tmp.exists() and not sibling.exists()
    assert user_file.exists() and (run / "checkpoints").is_dir()
    assert len(notes) == 1 and notes[0].startswith(f"removed 3 temporaries of {run}: ")
    assert f"pid {', '.join(map(str, sorted({pid, dead})))})" in notes[0]


def test_temporaries_of_live_processes_and_other_outputs_are_kept(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".out.tsv.tmp-{sleeper.pid}.tsv"
        mine = tmp_path / f".out.tsv.tmp-{os.getpid()}.tsv"
        other = tmp_path / f".other.tsv.tmp-{dead_pid()}.tsv"
        for path in (live, mine, other):
            path.write_text("x")
        assert remove_stale_temporaries(tmp_path / "out.tsv") == []
        assert live.exists() and mine.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale_temporaries(tmp_path / "out.tsv") == [live]  # its writer is dead now


def test_a_directory_moved_aside_before_a_kill_is_restored(tmp_path):
    out = tmp_path / "shards"
    old = tmp_path / f"shards.old-{dead_pid()}"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    notes = []
    remove_stale_temporaries(out, note=notes.append)
    assert (out / "manifest.json").read_text() == "{}" and not old.exists()
    assert notes == [f"restored {out} from {old.name} (left by killed run(s), pid {old.name.split('-')[-1]})"]
    again = tmp_path / f"shards.old-{dead_pid()}"  # with the output in place, a left-over old copy goes
    again.mkdir()
    assert remove_stale_temporaries(out) == [again] and out.is_dir() and not again.exists()


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    assert not pid_alive(2**40)
    assert pid_alive(0)  # a process group, never "dead"


def test_temporary_names_carry_the_pid(tmp_path):
    first, second = temporary_directory(tmp_path / "model"), temporary_directory(tmp_path / "model")
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.startswith(f".model.tmp-{os.getpid()}.")
