"""FASTA -> token shards (genomamba.io.tokenize): decoded windows equal pyfaidx slices, atomicity,
no-op re-runs, parameter conflicts."""

from __future__ import annotations

import gzip
import io
import json
import sys

import numpy as np
import pyfaidx
import pytest

from genomamba import alphabet as ab
from genomamba.errors import GenomambaError, InputDataError
from genomamba.io.shards import TokenShards
from genomamba.io.tokenize import TokenizeOptions, tokenize_files
from genomamba.io.windows import LAST_WINDOW_POLICIES, window_spans


def random_genome(path, seed=0, lengths=(5000, 1234, 77), width=60):
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGTACGTACGTacgtN", np.uint8)
    out = []
    for i, length in enumerate(lengths):
        seq = rng.choice(letters, size=length).astype(np.uint8)
        seq[100:400] = ord("N") if length > 400 else seq[100:400]  # an N run
        text = seq.tobytes()
        out.append(f">rec{i} some description\n".encode())
        out.append(b"\n".join(text[j : j + width] for j in range(0, len(text), width)) + b"\n")
    path.write_bytes(b"".join(out))
    return path


def assert_windows_match_pyfaidx(shard_dir, fasta_paths):
    shards = TokenShards(shard_dir)
    fastas = [pyfaidx.Fasta(str(p), as_raw=True, sequence_always_upper=False) for p in fasta_paths]
    index = shards.index.to_pandas()
    for i in range(len(shards)):
        record, start, end = shards.coordinates(i)
        expected = fastas[int(index["input"][i])][record][start:end].encode()
        real = end - start
        ids = np.asarray(shards[i])
        assert ab.decode(ids[:real], shards.softmask(i)[:real]) == expected, (record, start, end)
        assert np.array_equal(shards.get(i, "-")[:real], ab.reverse_complement(ids[:real]))
        assert index["n_fraction"][i] == pytest.approx(expected.upper().count(b"N") / real)
    for fasta in fastas:
        fasta.close()
    return shards


@pytest.mark.parametrize("policy", LAST_WINDOW_POLICIES)
def test_windows_equal_pyfaidx_slices(tmp_path, policy):
    fasta = random_genome(tmp_path / "g.fa")
    out = tmp_path / "shards"
    options = TokenizeOptions(window=500, stride=300, last_window=policy, shard_tokens=2000)
    result = tokenize_files([fasta], out, options)
    assert result.status == "written"
    shards = assert_windows_match_pyfaidx(out, [fasta])
    expected = [
        (f"rec{i}", s, e)
        for i, n in enumerate((5000, 1234, 77))
        for s, e in window_spans(n, 500, 300, policy)
    ]
    assert [shards.coordinates(i) for i in range(len(shards))] == expected
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["last_window"] == policy
    assert manifest["alphabet"] == ab.alphabet_description()
    assert len(manifest["shards"]) > 1
    assert not list(tmp_path.glob("shards.tmp-*"))


def test_demo_genomes_match_pyfaidx(tmp_path, demo_data):
    fastas = [demo_data / "lambda_virus.fa", demo_data / "yeast_chrI_chrII.fa"]
    if not all(p.exists() for p in fastas):
        pytest.skip("demo genomes not present in data/demo")
    copies = []
    for p in fastas:  # pyfaidx writes .fai next to the FASTA: work on copies
        copy = tmp_path / p.name
        copy.write_bytes(p.read_bytes())
        copies.append(copy)
    out = tmp_path / "demo"
    tokenize_files(copies, out, TokenizeOptions(window=32768, stride=20000, last_window="shift"))
    shards = assert_windows_match_pyfaidx(out, copies)
    records = {r["record"]: r["length"] for r in shards.manifest["records"]}
    assert records["gi|9626243|ref|NC_001416.1|"] == 48502  # phage lambda NC_001416.1
    assert set(records) == {"gi|9626243|ref|NC_001416.1|", "chrI", "chrII"}
    bgz = demo_data / "lambda_virus.fa.bgz"
    if bgz.exists():  # the BGZF copy streams to the same tokens as the plain file
        tokenize_files(
            [bgz], tmp_path / "bgz", TokenizeOptions(window=32768, stride=20000, last_window="shift")
        )
        from_bgz = TokenShards(tmp_path / "bgz")
        lambda_windows = shards.windows_of("gi|9626243|ref|NC_001416.1|")
        assert len(from_bgz) == len(lambda_windows) == 2
        for i, j in enumerate(lambda_windows):
            assert np.array_equal(from_bgz[i], shards[j])


def test_rerun_is_a_no_op_and_conflicts_need_force(tmp_path):
    fasta = random_genome(tmp_path / "g.fa")
    out = tmp_path / "out"
    options = TokenizeOptions(window=1000)
    tokenize_files([fasta], out, options)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert tokenize_files([fasta], out, options).status == "up-to-date"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    with pytest.raises(GenomambaError, match=r"made with other parameters \(window 1000 -> 2000"):
        tokenize_files([fasta], out, TokenizeOptions(window=2000))
    random_genome(fasta, seed=1)
    with pytest.raises(GenomambaError, match=r"other inputs or parameters \(inputs\); pass --force"):
        tokenize_files([fasta], out, options)
    assert tokenize_files([fasta], out, TokenizeOptions(window=2000), force=True).status == "written"
    assert TokenShards(out).manifest["parameters"]["window"] == 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.fa", "out"]


def test_error_leaves_nothing_behind(tmp_path):
    good = random_genome(tmp_path / "good.fa")
    bad = tmp_path / "bad.fa"
    bad.write_bytes(b">x\nACGT\nAC*T\n")
    out = tmp_path / "out"
    with pytest.raises(InputDataError, match="bad.fa: record 'x', line 3, column 3"):
        tokenize_files([good, bad], out, TokenizeOptions(window=100))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa", "good.fa"]
    # an existing directory survives a failed --force run untouched
    tokenize_files([good], out, TokenizeOptions(window=100))
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(InputDataError):
        tokenize_files([bad], out, TokenizeOptions(window=100), force=True)
    assert (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa", "good.fa", "out"]


def test_refuses_foreign_directory(tmp_path):
    fasta = random_genome(tmp_path / "g.fa")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(GenomambaError, match="not a genomamba token-shard directory"):
        tokenize_files([fasta], tmp_path / "mine", TokenizeOptions(), force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_duplicate_names_across_inputs(tmp_path):
    a = tmp_path / "a.fa"
    b = tmp_path / "b.fa"
    a.write_bytes(b">chr1\nACGT\n")
    b.write_bytes(b">x\nAC\n>chr1\nGG\n")
    with pytest.raises(InputDataError, match=r"'chr1' appears twice: .*a.fa line 1 and .*b.fa line 3"):
        tokenize_files([a, b], tmp_path / "out", TokenizeOptions(window=2))
    assert not (tmp_path / "out").exists()


def test_max_n_fraction_filters_and_all_n_records_are_kept(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_bytes(b">gap\nNNNNNNNNNN\n>mixed\nACGTNNNNNN\n>clean\nACGTACGTAC\n")
    out = tmp_path / "out"
    result = tokenize_files([fasta], out, TokenizeOptions(window=10, max_n_fraction=0.5))
    assert [r["record"] for r in result.manifest["records"]] == ["gap", "mixed", "clean"]
    assert result.manifest["records"][0]["n_fraction"] == 1.0
    assert result.manifest["totals"]["windows_filtered_n"] == 2
    assert TokenShards(out).records == ["clean"]
    gaps = tmp_path / "gaps.fa"
    gaps.write_bytes(b">gap\nNNNNNNNNNN\n")
    with pytest.raises(InputDataError, match="no window was written"):
        tokenize_files([gaps], tmp_path / "none", TokenizeOptions(window=10, max_n_fraction=0.5))
    assert not (tmp_path / "none").exists()


def test_ambiguity_codes_read_as_n_are_warned_about_once_per_input(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_bytes(b">a\nACGTRRACGT\n>b\nACGTACGTAC\n")
    warnings = []
    result = tokenize_files([fasta], tmp_path / "out", TokenizeOptions(window=10), warn=warnings.append)
    assert warnings == [f"{fasta}: IUPAC codes (R=2) read as N in 1 of 2 records"]
    assert result.manifest["records"][0]["iupac_counts"] == {"R": 2}


def test_stdin_input(tmp_path, monkeypatch):
    fasta = random_genome(tmp_path / "g.fa")
    payload = gzip.compress(fasta.read_bytes())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
    result = tokenize_files(["-"], tmp_path / "out", TokenizeOptions(window=700))
    assert result.manifest["inputs"][0]["path"] == "<stdin>"
    assert result.manifest["inputs"][0]["compression"] == "gzip"
    assert_windows_match_pyfaidx(tmp_path / "out", [fasta])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
    assert tokenize_files(["-"], tmp_path / "out", TokenizeOptions(window=700)).status == "up-to-date"
    assert not list(tmp_path.glob("out.tmp-*"))
