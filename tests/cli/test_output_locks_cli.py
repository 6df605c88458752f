"""Concurrent and interrupted commands: two real `genomamba tokenize` processes into one directory
(the second exits 75, the first one's data is kept), a killed tokenize's temporary directory
removed by the next run, and exit 75 from every command that writes an output someone else holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.io.locks import lock_file, output_lock
from genomamba.io.tokenize import TokenizeOptions, tokenize_files

REPO = Path(__file__).resolve().parents[2]
GENOMAMBA = [sys.executable, "-c", "from genomamba.cli import main; main()"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def start(*args: str) -> subprocess.Popen:
    """`genomamba ARGS` as its own process, reading FASTA from a pipe the test controls."""
    return subprocess.Popen([*GENOMAMBA, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GENOMAMBA, *args], capture_output=True, text=True, env=ENV, timeout=120)


def wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def holds_lock(out: Path, pid: int):
    def check() -> bool:
        try:
            return lock_file(out).read_text().split()[:1] == [str(pid)]
        except FileNotFoundError:
            return False

    return check


def test_two_tokenize_runs_into_one_directory(tmp_path):
    out = tmp_path / "shards"
    (tmp_path / "b.fa").write_bytes(b">b\n" + b"GGCCTTAA" * 20 + b"\n")
    # The first run holds the lock while it waits for its input on stdin: the two runs overlap for sure.
    first = start("tokenize", "-", "-o", str(out), "--window", "16")
    wait_for(holds_lock(out, first.pid), first, "the first run took the lock")

    second = run("tokenize", str(tmp_path / "b.fa"), "-o", str(out), "--window", "16")
    assert second.returncode == 75
    assert second.stderr == (
        f"error: another genomamba process is writing {out} (pid {first.pid}); wait for it or choose "
        "another output\n"
    )
    assert not out.exists()

    _, stderr = first.communicate(b">a\n" + b"ACGT" * 40 + b"\n", timeout=120)
    assert first.returncode == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["record"] for r in manifest["records"]] == ["a"] and manifest["totals"]["windows"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.fa", "shards"]  # no lock file, no temporary

    # run again once the first is done, the second is told that DIR holds other data (not lost either)
    again = run("tokenize", str(tmp_path / "b.fa"), "-o", str(out), "--window", "16")
    assert again.returncode == 1 and "pass --force to replace it" in again.stderr
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_the_temporary_directory_of_a_killed_tokenize_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "shards"
    (tmp_path / "b.fa").write_bytes(b">b\n" + b"GGCCTTAA" * 20 + b"\n")
    killed = start("tokenize", "-", "-o", str(out), "--window", "16")
    temporary = tmp_path / f"shards.tmp-{killed.pid}"
    killed.stdin.write(b">a\n" + b"ACGT" * 40 + b"\n")
    killed.stdin.flush()
    wait_for(temporary.is_dir, killed, "the temporary directory was made")
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    assert temporary.is_dir() and not out.exists()

    result = run("tokenize", str(tmp_path / "b.fa"), "-o", str(out), "--window", "16")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "killed run" in line]
    assert notes == [f"warning: removed 1 temporary of {out}: shards.tmp-{killed.pid} "
                     f"(left by killed run(s), pid {killed.pid})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.fa", "shards"]
    assert json.loads((out / "manifest.json").read_text())["records"][0]["record"] == "b"


# command line (paths relative to the test's folder) -> the output it locks
COMMANDS = {
    "tokenize": (["tokenize", "a.fa", "-o", "OUT"], "OUT"),
    "embed": (["embed", "model", "a.fa", "-o", "out.parquet"], "out.parquet"),
    "predict": (["predict", "model", "a.fa", "-o", "out.tsv"], "out.tsv"),
    "predict-track": (["predict", "model", "a.fa", "-o", "o.tsv", "--track-out", "t.bedgraph"], "t.bedgraph"),
    "score-variants": (["score-variants", "model", "v.vcf", "--genome", "a.fa", "-o", "out.tsv"], "out.tsv"),
    "pretrain": (["pretrain", "--data", "shards", "--preset", "tiny", "--out", "RUN"], "RUN"),
    "finetune": (["finetune", "--train", "t.csv", "--preset", "tiny", "--out", "FT"], "FT"),
    "evaluate": (["evaluate", "model", "--data", "t.csv", "--out", "EVAL"], "EVAL"),
    "make-task": (["make-task", "coding", "--fasta", "a.fa", "--gff3", "a.gff3", "-o", "t2.csv"], "t2.csv"),
}


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_every_writing_command_exits_75_while_its_output_is_locked(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a.fa").write_text(">a\nACGTACGTAC\n")
    Path("a.gff3").write_text("##gff-version 3\n")
    Path("t.csv").write_text("sequence,label\nACGT,0\nGGCC,1\n")
    Path("v.vcf").write_text("a\t2\t.\tC\tG\n")
    Path("model").mkdir()
    tokenize_files(["a.fa"], "shards", TokenizeOptions(window=4))  # real shards: pretrain gets to the lock
    args, output = COMMANDS[case]
    with output_lock(output):  # flock: a second open file conflicts even inside this process
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 75, result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: another genomamba process is writing {output} (pid {os.getpid()}); wait for it or choose "
        "another output"
    )
    assert sorted(os.listdir()) == ["a.fa", "a.gff3", "model", "shards", "t.csv", "v.vcf"]
