"""`genomamba tokenize` end to end: every bad-input case of the input layer, exit codes, messages,
and that a failed run leaves no output (nor temporary) directory behind."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from Bio import bgzf
from click.testing import CliRunner

from genomamba import alphabet as ab
from genomamba.cli import main
from genomamba.io.shards import TokenShards


def bgzf_bytes(tmp_path, data: bytes) -> bytes:
    path = tmp_path / "tmp.bgzf"
    writer = bgzf.BgzfWriter(str(path), "wb")
    writer.write(data)
    writer.close()
    raw = path.read_bytes()
    path.unlink()
    return raw


GOOD = b">chr1 desc\n" + b"ACGTACGTAC" * 30 + b"\n" + b"GGCCAATT" * 20 + b"\n"


def big_fasta() -> bytes:
    """~200 kb of random sequence: compresses to tens of kB, so truncation cuts real data."""
    rng = np.random.default_rng(5)
    seq = rng.choice(np.frombuffer(b"ACGT", np.uint8), size=200_000).tobytes()
    return b">big\n" + b"\n".join(seq[i : i + 80] for i in range(0, len(seq), 80)) + b"\n"


def corrupted_gzip() -> bytes:
    raw = bytearray(gzip.compress(big_fasta()))
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)
    return bytes(raw)


# case id -> (file bytes or a builder taking tmp_path, *fragments the error line must hold)
ERROR_CASES = {
    "empty-file": (b"", "empty file"),
    "header-only-strict": (b">a\n>b\nACGT\n", "record 'a' (line 1) has no sequence (--strict)"),
    "only-empty-records": (b">a\n>b\n", "no record has any sequence (2 empty record(s) skipped)"),
    "duplicate-names": (b">a\nAC\n>b\nGG\n>a\nTT\n", "duplicate record name 'a' (lines 1 and 5)"),
    "bare-cr": (b">a\r\nACGT\r\nAC\rGT\r\n", "record 'a', line 3, column 3: bare carriage return"),
    "mixed-endings": (b">a\r\nACGT\r\nACGT\nAC\r\n", "record 'a', line 3, column 5: LF line ending", "mixed"),
    "mixed-lf-header": (b">a\nACGT\r\nAC\n", "record 'a', line 2, column 5: carriage return", "mixed"),
    "text-before-header": (b"hello\n>a\nAC\n", "line 1, column 1: text before the first '>' header"),
    "no-name": (b">\nACGT\n", "line 1: header line '>' has no record name"),
    "no-name-space": (b"> desc\nACGT\n", "line 1: header line '>' has no record name"),
    "space": (b">a\nACGT\nAC GT\n", "record 'a', line 3, column 3: invalid character ' '", "whitespace"),
    "tab": (b">a\nACGT\nACG\tT\n", "record 'a', line 3, column 4: invalid character byte 0x09"),
    "letter-x": (b">a\nACXGT\n", "record 'a', line 2, column 3: invalid character 'X'", "--lenient"),
    "digit": (b">a\nAC1GT\n", "line 2, column 3: invalid character '1'"),
    "star": (b">a\nACGT*\n", "line 2, column 5: invalid character '*'"),
    "dash": (b">a\nA-CGT\n", "line 2, column 2: invalid character '-'"),
    "dot": (b">a\n.ACGT\n", "line 2, column 1: invalid character '.'"),
    "rna-u": (b">a\nACGU\n", "line 2, column 4: invalid character 'U'", "--rna"),
    "fastq": (b"@r1\nACGT\n+\nIIII\n", "looks like FASTQ"),
    "truncated-gzip": (lambda tmp: gzip.compress(big_fasta())[:-2000], "truncated gzip stream"),
    "truncated-bgzf": (lambda tmp: bgzf_bytes(tmp, big_fasta())[:-2000], "truncated BGZF stream"),
    "bgzf-no-eof": (lambda tmp: bgzf_bytes(tmp, big_fasta())[:-28], "without its end-of-file marker"),
    "corrupt-gzip": (lambda tmp: corrupted_gzip(), "corrupt gzip data"),
}

# case id -> (file bytes, the sequence the written shards decode to)
ACCEPTED_CASES = {
    "crlf": (b">a\r\nACGT\r\nAC\r\n", b"ACGTAC"),
    "no-final-newline": (b">a\nACGT\nAC", b"ACGTAC"),
    "bom": (b"\xef\xbb\xbf>a\nACGT\n", b"ACGT"),
    "lowercase": (b">a\nacgtACGT\n", b"acgtACGT"),
    "iupac": (b">a\nACRYKMSWBDHVN\n", b"AC" + b"N" * 11),
    "all-n": (b">a\nNNNN\n>b\nAC\n", b"NNNNAC"),
    "empty-record-skipped": (b">a\n>b\nACGT\n", b"ACGT"),
    "lenient": (b">a\nAC*-.1X\n", b"ACNNNNN"),
    "rna": (b">a\nACGU\n", b"ACGT"),
    "blank-lines": (b"\n>a\nAC\n\nGT\n\n", b"ACGT"),
}

# The extra command-line options of the cases (of either table) that need any; the others pass none.
CASE_OPTIONS = {"header-only-strict": ["--strict"], "lenient": ["--lenient"], "rna": ["--rna"]}


def each_case(table: dict):
    """Parametrise a test over ``table`` (ids: the case ids) as (content, options, expected): the row's file
    content, the case's CASE_OPTIONS and the rest of the row (a tuple)."""
    rows = [(row[0], CASE_OPTIONS.get(case_id, []), row[1:]) for case_id, row in table.items()]
    return pytest.mark.parametrize(("content", "options", "expected"), rows, ids=list(table))


def run(args):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


def fixture_file(tmp_path, content, name="input.fa"):
    path = tmp_path / name
    path.write_bytes(content(tmp_path) if callable(content) else content)
    return path


def tokenize(fasta, out, *options):
    """``genomamba tokenize FASTA -o OUT [options]``: (exit code, stdout, stderr)."""
    return run(["tokenize", str(fasta), "-o", str(out), *options])


@each_case(ERROR_CASES)
def test_bad_input_exit_65_with_message_and_no_output(tmp_path, content, options, expected):
    fasta = fixture_file(tmp_path, content)
    out = tmp_path / "shards"
    code, stdout, stderr = tokenize(fasta, out, "--window", "64", *options)
    assert code == 65, stderr
    (error_line,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert error_line.startswith(f"error: {fasta}: ")
    for fragment in expected:
        assert fragment in error_line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.fa"]  # no shards.tmp-<pid> either


def _decoded(out):
    shards = TokenShards(out)
    return b"".join(ab.decode(np.asarray(shards[i]), shards.softmask(i)) for i in range(len(shards)))


@each_case(ACCEPTED_CASES)
def test_accepted_inputs(tmp_path, content, options, expected):
    (sequence,) = expected
    fasta = fixture_file(tmp_path, content)
    out = tmp_path / "shards"
    code, _, stderr = tokenize(fasta, out, "--window", "64", *options)
    assert code == 0, stderr
    assert _decoded(out) == sequence


def test_warnings_and_counts_land_in_stderr_and_manifest(tmp_path):
    fasta = fixture_file(tmp_path, b"\xef\xbb\xbf>a\n>b\nACRRN\n>c\nNNNN\n>d\nAC*T\n")
    out = tmp_path / "shards"
    code, stdout, stderr = tokenize(fasta, out, "--lenient")
    assert code == 0
    assert stdout == ""
    assert f"warning: {fasta}: UTF-8 byte-order mark before the first '>' removed" in stderr
    assert f"warning: {fasta}: record 'a' (line 1) has no sequence; skipped" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    records = {r["record"]: r for r in manifest["records"]}
    assert records["b"]["iupac_counts"] == {"R": 2}
    assert records["c"]["n_fraction"] == 1.0 and "all N" in records["c"]["problems"]
    assert records["d"]["lenient_replacements"] == 1
    assert manifest["skipped_records"] == [
        {"input": 0, "record": "a", "header_line": 2 - 1, "reason": "no sequence"}
    ]


def test_rerun_no_op_conflict_and_force(tmp_path):
    fasta = fixture_file(tmp_path, GOOD)
    out = tmp_path / "shards"
    assert tokenize(fasta, out, "--window", "100")[0] == 0
    code, _, stderr = tokenize(fasta, out, "--window", "100")
    assert code == 0 and "up to date" in stderr
    code, _, stderr = tokenize(fasta, out, "--window", "50")
    assert code == 1 and "pass --force" in stderr and "window 100 -> 50" in stderr
    assert tokenize(fasta, out, "--window", "50", "--force")[0] == 0
    assert json.loads((out / "manifest.json").read_text())["parameters"]["window"] == 50


def test_usage_errors_exit_2(tmp_path):
    fasta = fixture_file(tmp_path, GOOD)
    assert tokenize(fasta, tmp_path / "o", "--window", "0")[0] == 2
    assert tokenize(fasta, tmp_path / "o", "--last-window", "wrap")[0] == 2
    assert tokenize(fasta, tmp_path / "o", "--lenient", "--strict")[0] == 2
    assert tokenize(tmp_path / "absent.fa", tmp_path / "o")[0] == 2
    assert not (tmp_path / "o").exists()


def test_help_shows_defaults_and_examples():
    code, stdout, _ = run(["tokenize", "--help"])
    assert code == 0
    for text in ("Examples:", "1048576", "--last-window", "keep", "--max-n-fraction", "--stride"):
        assert text in stdout
