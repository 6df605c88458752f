"""`genomamba validate` (per-record report, exit 65 on invalid input) and `genomamba doctor`."""

from __future__ import annotations

import builtins
import json

import pytest
from click.testing import CliRunner

from genomamba.cli import main


def run(args):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path, data: bytes, name="g.fa"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_report_columns_and_formats(tmp_path):
    path = write(tmp_path, b">chr1 d\nACGTacgtNR\n>gap\nNNNN\n")
    code, stdout, stderr = run(["validate", "--format", "json", str(path)])
    assert code == 0, stderr
    rows = json.loads(stdout)
    assert [r["record"] for r in rows] == ["chr1", "gap"]
    chr1 = rows[0]
    assert chr1["length"] == 10 and chr1["gc_fraction"] == pytest.approx(0.5)
    assert chr1["n_fraction"] == pytest.approx(0.2) and chr1["softmask_fraction"] == pytest.approx(0.4)
    assert chr1["iupac_counts"] == {"R": 1}
    assert rows[1]["problems"] == ["all N"]
    code, stdout, _ = run(["validate", "--format", "tsv", str(path)])
    lines = [line.split("\t") for line in stdout.splitlines()]
    assert lines[0] == ["file", "record", "length", "gc", "n_frac", "softmask_frac", "iupac", "problems"]
    assert lines[1][1:7] == ["chr1", "10", "0.5000", "0.2000", "0.4000", "R=1"]
    assert lines[2][3] == "NA"  # no ACGT base: GC undefined
    code, stdout, _ = run(["validate", str(path)])
    assert code == 0 and "chr1" in stdout and "IUPAC codes read as N (R=1)" in stdout


def test_invalid_characters_are_reported_per_record_and_exit_65(tmp_path):
    path = write(tmp_path, b">a\nACGT\n>b\nAC*T\nA-GT\n>c\nGG\n")
    code, stdout, stderr = run(["validate", "--format", "json", str(path)])
    assert code == 65
    rows = {r["record"]: r for r in json.loads(stdout)}
    assert set(rows) == {"a", "b", "c"}  # the report goes on past the bad record
    assert rows["b"]["invalid_count"] == 2
    assert f"error: {path}: record 'b', line 4, column 3: invalid character '*'" in stderr
    code, stdout, _ = run(["validate", "--lenient", "--format", "json", str(path)])
    assert code == 0 and {r["record"]: r for r in json.loads(stdout)}["b"]["lenient_replacements"] == 2


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty file"),
        (b"@r\nACGT\n+\nIIII\n", "looks like FASTQ"),
        (b">a\nAC\n>a\nGG\n", "duplicate record name 'a' (lines 1 and 3)"),
        (b">a\r\nAC\rGT\r\n", "bare carriage return"),
        (b"x\n>a\nAC\n", "text before the first '>'"),
        (b">\nAC\n", "has no record name"),
    ],
)
def test_file_errors_exit_65_and_other_files_still_reported(tmp_path, data, fragment):
    bad = write(tmp_path, data, "bad.fa")
    good = write(tmp_path, b">ok\nACGT\n", "good.fa")
    code, stdout, stderr = run(["validate", "--format", "tsv", str(bad), str(good)])
    assert code == 65
    assert f"error: {bad}: " in stderr and fragment in stderr
    assert "ok\t4" in stdout


def test_strict_and_empty_records(tmp_path):
    path = write(tmp_path, b">empty\n>a\nAC\n")
    code, _, stderr = run(["validate", str(path)])
    assert code == 0 and "record 'empty' (line 1) has no sequence; skipped" in stderr
    code, _, stderr = run(["validate", "--strict", str(path)])
    assert code == 65 and "(--strict)" in stderr


def test_doctor_reports_the_installation():
    code, stdout, _ = run(["doctor"])
    assert code == 0
    for text in (
        "genomamba ",
        "python ",
        "torch ",
        "cuda available:",
        "triton",
        "numpy",
        "pyfaidx",
        "scan backend",
    ):
        assert text in stdout
    code, stdout, _ = run(["doctor", "--format", "json"])
    info = json.loads(stdout)
    assert {"python", "torch", "cuda_available", "gpus", "triton", "packages", "scan_backends"} <= set(info)


def test_doctor_shows_scan_tuning_overrides(monkeypatch):
    monkeypatch.setenv("GENOMAMBA_SCAN_TUNING", '{"block_t": 16}')
    code, stdout, _ = run(["doctor"])
    assert code == 0
    assert 'GENOMAMBA_SCAN_TUNING={"block_t": 16}' in stdout
    code, stdout, _ = run(["doctor", "--format", "json"])
    assert json.loads(stdout)["scan_tuning"] == '{"block_t": 16}'


def test_doctor_says_triton_is_optional_when_it_is_not_installed(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "triton" or name.startswith("triton."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    code, stdout, _ = run(["doctor"])
    assert code == 0
    (line,) = [text for text in stdout.splitlines() if text.startswith("triton ")]
    assert line.startswith("triton not installed (") and line.endswith("pip install 'genomamba[gpu]'")
    import torch

    expected = "GPU runs fall back" if torch.cuda.is_available() else "the CPU path (chunked PyTorch scan)"
    assert expected in line
    code, stdout, _ = run(["doctor", "--format", "json"])
    info = json.loads(stdout)
    assert info["triton"] is None and info["triton_installed"] is False


def test_doctor_survives_a_missing_dispatcher(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "genomamba.ops.dispatch":
            raise ImportError("no module named genomamba.ops.dispatch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    code, stdout, _ = run(["doctor"])
    assert code == 0
    assert "scan backends: unavailable (ImportError: no module named genomamba.ops.dispatch)" in stdout
