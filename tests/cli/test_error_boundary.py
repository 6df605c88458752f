"""The error boundary of every command (genomamba.cli.boundary): operating-system failures and failed
memory allocations are one `error:` line and a documented exit code, never a traceback, and leave
nothing partial behind.

Read-only outputs are real (chmod 0555) where that stops writes; as root it does not, and writes into
the directory then fail with EROFS as on a read-only mount (injected at os.open, open, os.mkdir and
os.replace). A full disk is injected the same way: writes into the directory fail with ENOSPC, as
the kernel reports it (an OSError without a file name). Where this machine lets the tests mount a
tmpfs, one read-only and one tiny mount check the same thing for real. stdout on /dev/full and a
closed pipe are real.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.errors import EXIT_BROKEN_PIPE, EXIT_CANTCREAT, EXIT_IOERR, EXIT_UNAVAILABLE
from genomamba.io.tokenize import TokenizeOptions, tokenize_files
from tests.faults import is_inside, refuse_writes
from tests.infer.infer_cases import BINARY_HEAD, save_model

LAMBDA = "gi|9626243|ref|NC_001416.1|"
_LEFTOVER = re.compile(r"\.(tmp|old)-\d+|\.part$|\.lock$")


# -- inputs: tiny models, shards and tables, made once --------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, demo_data) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("boundary_inputs")
    fasta = root / "pieces.fa"
    lambda_text = "".join((demo_data / "lambda_virus.fa").read_text().splitlines()[1:])
    fasta.write_text(f">a\n{lambda_text[:300]}\n>b\n{lambda_text[5000:5200]}\n")
    genome = root / "lambda.fa"
    shutil.copy(demo_data / "lambda_virus.fa", genome)
    vcf = root / "v.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\n{LAMBDA}\t1\ta\tG\tA\n")
    train = root / "train.csv"
    rows = [f"{lambda_text[i:i + 40]},{'ab'[k % 2]}" for k, i in enumerate(range(0, 1200, 100))]
    train.write_text("sequence,label\n" + "\n".join(rows) + "\n")
    shards = root / "shards"
    tokenize_files([demo_data / "lambda_virus.fa"], shards, TokenizeOptions(window=512))
    return {
        "fasta": fasta, "genome": genome, "vcf": vcf, "train": train, "shards": shards,
        "mlm": save_model(root / "mlm", rc_strategy="ph"),
        "binary": save_model(root / "binary", rc_strategy="ph", head=BINARY_HEAD),
    }


def command_args(command: str, out: Path, inputs: dict[str, Path]) -> list:
    """The arguments of a small, fast run of ``command`` writing to ``out``."""
    cpu = ["--device", "cpu"]
    return {
        "tokenize": ["tokenize", inputs["fasta"], "-o", out, "--window", 100],
        "embed": ["embed", inputs["mlm"], inputs["fasta"], "-o", out, *cpu],
        "predict": ["predict", inputs["binary"], inputs["fasta"], "-o", out, *cpu],
        "score-variants": ["score-variants", inputs["mlm"], inputs["vcf"], "--genome", inputs["genome"],
                           "-o", out, "--window", 64, *cpu],
        "pretrain": ["pretrain", "--data", inputs["shards"], "--preset", "tiny", "--out", out,
                     "--max-steps", 1, "--seq-len", 64, "--batch-size", 2, *cpu],
        "finetune": ["finetune", "--train", inputs["train"], "--preset", "tiny", "--out", out,
                     "--max-steps", 1, "--batch-size", 4, *cpu],
    }[command]


OUTPUT_NAMES = {"tokenize": "shards", "embed": "emb.tsv", "predict": "pred.tsv", "score-variants": "llr.tsv",
                "pretrain": "run", "finetune": "ft"}
COMMANDS = list(OUTPUT_NAMES)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result) -> str:
    """The run's single ``error:`` line, after checking that there is exactly one and no traceback."""
    assert "Traceback" not in result.output, result.output
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def leftovers(folder: Path) -> list[Path]:
    """Temporaries and lock files anywhere under ``folder``."""
    return [p for p in folder.rglob("*") if _LEFTOVER.search(p.name)]


# -- injected faults --------------------------------------------------------------------------------


class _FullFile:
    """A file whose writes fail with ENOSPC as on a full disk (no file name in the error, as the
    kernel reports a failed write) once ``budget`` bytes are written."""

    def __init__(self, handle, budget: int):
        self._handle, self._budget = handle, budget

    def write(self, data):
        if len(data) > self._budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __iter__(self):
        return iter(self._handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def inject_full_disk(monkeypatch, root: Path, budget: int = 0) -> None:
    """Files opened for writing under ``root`` (through ``open``) take ``budget`` bytes, then fail."""
    root = Path(os.path.realpath(root))
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if any(c in mode for c in "wax+") and is_inside(file, root):
            return _FullFile(handle, budget)
        return handle

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A directory nothing can be written into: chmod 0555 where that stops writes (not as root),
    else EROFS injected. Yields (directory, the errno writes get)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        if os.access(directory, os.W_OK):  # root: permissions do not apply
            refuse_writes(monkeypatch, directory)  # as on a read-only mount
            yield directory, errno.EROFS
        else:
            yield directory, errno.EACCES
    finally:
        directory.chmod(0o755)


# -- read-only output: exit 73 -----------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_output_in_a_read_only_directory_exits_73_naming_it(command, inputs, read_only_dir):
    directory, err = read_only_dir
    out = directory / OUTPUT_NAMES[command]
    result = run(*command_args(command, out, inputs))
    assert result.exit_code == EXIT_CANTCREAT, result.output
    line = one_error_line(result)
    assert str(out) in line, line
    assert ("read-only file system" if err == errno.EROFS else "permission denied") in line
    assert "write the output" in line  # what to do
    assert list(directory.iterdir()) == []


def test_output_under_a_missing_folder_of_a_read_only_one_exits_73(inputs, read_only_dir):
    directory, _ = read_only_dir
    out = directory / "new" / "emb.tsv"
    result = run(*command_args("embed", out, inputs))
    assert result.exit_code == EXIT_CANTCREAT, result.output
    assert str(directory / "new") in one_error_line(result)
    assert list(directory.iterdir()) == []


# -- disk full while writing: exit 74 ------------------------------------------------------------------


def _earlier_output(command: str, out: Path, inputs) -> tuple[Path, bytes] | None:
    """An output of an earlier run at ``out`` that the failed run must leave as it was (None for the
    run directories: a new run never writes into an old one)."""
    if command == "tokenize":  # replaced only with --force, which the failing run gets
        tokenize_files([inputs["fasta"]], out, TokenizeOptions(window=50))
        return out / "manifest.json", (out / "manifest.json").read_bytes()
    if command in ("embed", "predict", "score-variants"):
        out.write_text("earlier\toutput\n")
        return out, out.read_bytes()
    return None


@pytest.mark.parametrize("command", COMMANDS)
def test_disk_full_while_writing_exits_74_and_keeps_earlier_output(command, inputs, tmp_path, monkeypatch):
    folder = tmp_path / "disk"
    folder.mkdir()
    out = folder / OUTPUT_NAMES[command]
    earlier = _earlier_output(command, out, inputs)
    inject_full_disk(monkeypatch, folder, budget=100)
    args = command_args(command, out, inputs) + (["--force"] if command == "tokenize" else [])
    result = run(*args)
    assert result.exit_code == EXIT_IOERR, result.output
    line = one_error_line(result)
    assert str(out) in line and "no space left on device" in line and "free some space" in line
    assert leftovers(folder) == []
    if earlier is None:
        assert list(folder.iterdir()) == []  # no half run directory
    else:
        path, data = earlier
        assert path.read_bytes() == data


def test_disk_full_at_the_final_rename_keeps_the_old_directory(inputs, tmp_path, monkeypatch):
    out = tmp_path / "shards"
    tokenize_files([inputs["fasta"]], out, TokenizeOptions(window=50))
    before = sorted((p.name, p.read_bytes()) for p in out.iterdir())
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == out and ".tmp-" in Path(src).name:  # the new directory, not the old one put back
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(src))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    result = run(*command_args("tokenize", out, inputs), "--force")
    assert result.exit_code == EXIT_IOERR, result.output
    line = one_error_line(result)
    assert f"{out}:" in line or str(out) in line  # the temporary is shown as what it becomes
    assert ".tmp-" not in line
    assert sorted((p.name, p.read_bytes()) for p in out.iterdir()) == before
    assert leftovers(tmp_path) == []


# -- stdout: /dev/full and a closed pipe -------------------------------------------------------------


def _genomamba(*args, **kwargs) -> subprocess.CompletedProcess:
    code = "from genomamba.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], stderr=subprocess.PIPE,
                          text=True, timeout=120, check=False, **kwargs)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_stdout_on_a_full_device_exits_74(demo_data):
    with open("/dev/full", "w") as full:
        result = _genomamba("validate", demo_data / "lambda_virus.fa", stdout=full)
    assert result.returncode == EXIT_IOERR
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: standard output: no space left on device; free some space or write the output elsewhere"
    ]


def test_stdout_closed_by_its_reader_exits_quietly_with_141(tmp_path):
    fasta = tmp_path / "many.fa"
    fasta.write_text("".join(f">r{i}\nACGT\n" for i in range(5000)))
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line (as `| head -0` would be)
    try:
        result = _genomamba("validate", "--format", "tsv", fasta, stdout=write)
    finally:
        os.close(write)
    assert result.returncode == EXIT_BROKEN_PIPE
    assert result.stderr == ""  # nothing to say: no traceback, no "Exception ignored"


# -- memory: exit 69 ------------------------------------------------------------------------------------


def _cuda_out_of_memory():
    import torch

    return torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which "
        "1.20 GiB is free. Including non-PyTorch memory, this process has 77.80 GiB memory in use. If "
        "reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
    )


def _fail_in_the_model(monkeypatch, error) -> None:
    from genomamba.io.shards import ShardWriter
    from genomamba.model.backbone import Backbone

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(Backbone, "forward", fail)  # every command that runs a model runs its backbone
    monkeypatch.setattr(ShardWriter, "add", fail)  # tokenize runs no model: its memory is the shards'


MEMORY_ADVICE = {
    "tokenize": "--window", "embed": "--batch-size or --window", "predict": "--batch-size or --window",
    "score-variants": "--batch-size or --window", "pretrain": "--batch-size or --seq-len",
    "finetune": "--batch-size",
}


@pytest.mark.parametrize("command", COMMANDS)
def test_memory_error_exits_69_with_advice(command, inputs, tmp_path, monkeypatch):
    _fail_in_the_model(monkeypatch, MemoryError())
    out = tmp_path / OUTPUT_NAMES[command]
    result = run(*command_args(command, out, inputs))
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    line = one_error_line(result)
    assert line == f"error: out of memory; try a smaller {MEMORY_ADVICE[command]}"
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["embed", "predict", "score-variants", "pretrain", "finetune"])
def test_cuda_out_of_memory_exits_69_in_one_line(command, inputs, tmp_path, monkeypatch):
    _fail_in_the_model(monkeypatch, _cuda_out_of_memory())
    out = tmp_path / OUTPUT_NAMES[command]
    result = run(*command_args(command, out, inputs))
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    line = one_error_line(result)
    assert line == (
        "error: out of GPU memory: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
        "capacity of 79.10 GiB of which 1.20 GiB is free.; try a smaller "
        f"{MEMORY_ADVICE[command]}, or --device cpu"
    )
    assert not out.exists() and leftovers(tmp_path) == []


def test_torch_cpu_allocation_failure_names_the_size(inputs, tmp_path, monkeypatch):
    _fail_in_the_model(monkeypatch, RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
        "tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)"))
    result = run(*command_args("embed", tmp_path / "e.tsv", inputs))
    assert result.exit_code == EXIT_UNAVAILABLE
    assert one_error_line(result) == (
        "error: out of memory: could not allocate 64.0 GiB; try a smaller --batch-size or --window")


def test_a_full_disk_reported_by_safetensors_exits_74(inputs, tmp_path, monkeypatch):
    """safetensors (Rust) wraps the OS error in an exception of its own; the boundary finds it."""
    from safetensors import SafetensorError

    _fail_in_the_model(monkeypatch, SafetensorError(
        "Error while serializing: I/O error: No space left on device (os error 28)"))
    out = tmp_path / "run"
    result = run(*command_args("pretrain", out, inputs))
    assert result.exit_code == EXIT_IOERR, result.output
    assert one_error_line(result) == (
        f"error: {out}: no space left on device; free some space or write the output elsewhere")
    assert not out.exists()


def test_a_bug_is_not_swallowed(inputs, tmp_path, monkeypatch):
    """An error that is neither the system's nor the allocator's is a bug: it keeps its traceback."""
    _fail_in_the_model(monkeypatch, RuntimeError("shapes do not match"))
    result = run(*command_args("embed", tmp_path / "e.tsv", inputs))
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


# -- real mounts, where this machine allows them ---------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs mounted at ``path`` for the block; skips the test where mounting is not allowed."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, check=False) if shutil.which("mount") else None
    if mounted is None or mounted.returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_real_read_only_mount_exits_73(inputs, tmp_path):
    with tmpfs(tmp_path / "mnt", "ro,size=1m") as mount:
        result = run(*command_args("tokenize", mount / "shards", inputs))
        assert result.exit_code == EXIT_CANTCREAT, result.output
        assert "read-only file system" in one_error_line(result)
        assert list(mount.iterdir()) == []


def test_real_full_tmpfs_exits_74_and_leaves_it_empty(inputs, tmp_path, demo_data):
    with tmpfs(tmp_path / "mnt", "size=64k") as mount:
        result = run("tokenize", demo_data / "lambda_virus.fa", "-o", mount / "shards")
        assert result.exit_code == EXIT_IOERR, result.output
        assert "no space left on device" in one_error_line(result)
        assert list(mount.iterdir()) == []


# -- pretrain: a model too large, found before RUN_DIR exists --------------------------------------------


def test_a_model_too_large_for_memory_exits_69_before_run_dir_exists(inputs, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model:\n  d_model: 1000000\n")
    out = tmp_path / "runs" / "huge"
    result = run(*command_args("pretrain", out, inputs), "--config", config)
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    line = one_error_line(result)
    assert line.startswith("error: not enough memory on cpu for the model (preset tiny with d_model=1000000)")
    assert "could not allocate" in line and "smaller preset" in line
    assert not (tmp_path / "runs").exists()


# -- the boundary's parts ----------------------------------------------------------------------------


def test_temporaries_are_shown_as_what_they_become():
    from genomamba.cli.boundary import _shown_path

    assert _shown_path("/data/.emb.tsv.tmp-4242.tsv") == "/data/emb.tsv"
    assert _shown_path("/data/shards.tmp-17/tokens-00000.npy") == "/data/shards/tokens-00000.npy"
    assert _shown_path("/run/checkpoints/.step-000010.tmp-9.ab12cd") == "/run/checkpoints/step-000010"
    assert _shown_path("/data/plain.tsv") == "/data/plain.tsv"


def test_the_boundary_does_not_import_torch():
    code = ("import sys; import genomamba.cli, genomamba.cli.boundary, genomamba.errors; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
