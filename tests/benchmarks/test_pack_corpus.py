"""scripts/pack_corpus.py: the pretraining corpus packed for the device machine, unpacked exactly,
and a device job's returned run checked and moved into place.

Real inputs: the committed demo genomes (BGZF lambda, plain two-record yeast), the committed
GenBank plasmid (tests/data/NC_007719.gbk.gz, read through genomamba's GenBank input), and a
synthetic gzip FASTA with soft-masking, N runs, IUPAC codes and uneven record line widths.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import pack_corpus  # noqa: E402

from genomamba.io.compression import open_input  # noqa: E402
from genomamba.io.fasta import read_fasta  # noqa: E402
from genomamba.io.tokenize import TokenizeOptions, tokenize_files  # noqa: E402
from genomamba.train.state_files import IncompleteStateError, write_state_files  # noqa: E402


def _synthetic_fasta(rng: np.random.Generator) -> bytes:
    """Three records: soft-masked runs, an N run, IUPAC codes, widths 60, 70 and 13."""
    records = []
    for name, n, width in (("chr1 first record", 5003, 60), ("chr2", 777, 70), ("plasmid x y", 40, 13)):
        seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, n)].copy()
        seq[100:400] |= 0x20  # a soft-masked repeat
        seq[500:650] = ord("N")
        seq[600:620] = ord("n")
        seq[rng.integers(0, n, 5)] = np.frombuffer(b"RYKMS", np.uint8)
        records.append((name.encode(), seq.tobytes(), width))
    return pack_corpus.fasta_text(records)


@pytest.mark.parametrize("text", [b"ACGTN" * 3, b"", b"acgtnRYKMSWBDHVacgt**--", b"NNNNnnnnAAAAaaaa"])
def test_sequence_sections_round_trip(text):
    sections = pack_corpus.encode_sequence(text)
    assert pack_corpus.decode_sequence(sections, len(text)) == text


def test_random_sequences_round_trip():
    rng = np.random.default_rng(7)
    letters = np.frombuffer(b"ACGTacgtNnRYkmW*-", np.uint8)
    weights = np.array([5, 5, 5, 5, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 0.5, 0.2, 0.2])
    for _ in range(50):
        picks = rng.choice(len(letters), int(rng.integers(0, 500)), p=weights / weights.sum())
        seq = letters[picks].tobytes()
        assert pack_corpus.decode_sequence(pack_corpus.encode_sequence(seq), len(seq)) == seq


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (b">a desc\nACGT\nAC\n>b\nGG\n", "2bit"),
        (b">a\nACGT\nACGT\nAC\n>empty\n>b\nNNNN\n", "2bit"),
        (b">a\nACG\nACGT\n", "raw"),  # uneven lines
        (b">a\r\nACGT\r\n", "2bit"),  # CRLF: each CR kept as a non-ACGT byte
        (b">a\nACGT", "raw"),  # no final newline
        (b">a\nACGT\n\n\n", "2bit"),  # blank lines at the end: counted
        (b">a\nACGT\n\nAC\n", "raw"),  # a blank line inside a record
    ],
)
def test_file_text_rebuilt_byte_for_byte(text, encoding):
    got, records, sections = pack_corpus.file_sections(text)
    assert got == encoding
    assert pack_corpus.rebuild_text({"encoding": got, "records": records}, sections) == text


def _corpus(tmp_path: Path) -> tuple[Path, Path]:
    """A run config + data manifest over the demo genomes, the GenBank plasmid and a synthetic
    genome, with the fetched files laid out as `genomamba fetch` lays them out."""
    synthetic = gzip.compress(_synthetic_fasta(np.random.default_rng(0)), mtime=0)
    sources = {
        "lambda": ("lambda_virus.fa.bgz", (REPO / "data/demo/lambda_virus.fa.bgz").read_bytes()),
        "yeast": ("yeast_chrI_chrII.fa", (REPO / "data/demo/yeast_chrI_chrII.fa").read_bytes()),
        "plasmid": ("NC_007719.gbk.gz", (REPO / "tests/data/NC_007719.gbk.gz").read_bytes()),
        "synthetic": ("synthetic.fa.gz", synthetic),
    }
    entries = []
    for genome, (name, data) in sources.items():
        (tmp_path / "results/pack/genomes" / genome).mkdir(parents=True)
        (tmp_path / "results/pack/genomes" / genome / name).write_bytes(data)
        entries.append({
            "name": genome, "licence": "test", "citation": "test",
            "holdout": ["chrII"] if genome == "yeast" else [],
            "files": [{"name": name, "role": "fasta", "urls": ["https://example.org/x"],
                       "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}],
        })
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(json.dumps({"manifest_version": 1, "genomes": entries}))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "run": "pack", "results_dir": str(tmp_path / "results"), "manifest": str(manifest),
        "genomes": list(sources), "tokenize": {"window": 4096, "max_n_fraction": 0.5},
        "pretrain": {"preset": "tiny", "max_steps": 7},
    }))
    return config, manifest


def test_pack_then_unpack_gives_the_same_sequences_and_checksums(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the schema's defaults are read from pipelines/schema
    config, _ = _corpus(tmp_path)
    genomes = tmp_path / "results/pack/genomes"
    index = pack_corpus.pack(str(config), None, str(tmp_path / "corpus"), None, log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == ["corpus.bin.xz", "corpus.json"]
    dest = tmp_path / "device"
    assert pack_corpus.unpack(str(tmp_path / "corpus"), str(dest), None, log=lambda m: None) == [
        "lambda", "yeast", "plasmid", "synthetic"]
    for genome, entry in index["genomes"].items():
        (f,) = entry["files"]
        source = genomes / genome / f["source"]["name"]
        unpacked = dest / "genomes" / genome / f["fasta"]["name"]
        assert f["source"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        assert f["fasta"]["sha256"] == hashlib.sha256(unpacked.read_bytes()).hexdigest()
        if f["source"]["format"] == "fasta":  # the decompressed source, byte for byte
            with open_input(source) as stream:
                assert unpacked.read_bytes() == b"".join(stream.blocks())
        assert f["encoding"] == "2bit"
        # names, descriptions, bases, soft-masking: what genomamba reads is the same
        original, copy = read_fasta(source), read_fasta(unpacked)
        assert [(r.name, r.description) for r in copy] == [(r.name, r.description) for r in original]
        for a, b in zip(original, copy, strict=True):
            assert np.array_equal(a.ids, b.ids) and np.array_equal(a.softmask, b.softmask)
    plasmid = index["genomes"]["plasmid"]["files"][0]
    assert plasmid["source"]["format"] == "genbank" and plasmid["fasta"]["name"] == "NC_007719.fa"
    assert plasmid["records"][0]["header"].startswith("NC_007719.1 ")
    # the token shards made from the unpacked files are the shards made from the sources
    options = TokenizeOptions(window=4096, max_n_fraction=0.5)
    for genome in ("synthetic", "yeast"):
        a = tokenize_files([next((genomes / genome).iterdir())], tmp_path / "a" / genome, options)
        b = tokenize_files(pack_corpus.unpacked_files(index, dest, genome), tmp_path / "b" / genome, options)
        assert a.manifest["records"] == b.manifest["records"]
        for shard in a.manifest["shards"]:
            for key in ("tokens", "softmask"):
                assert (a.directory / shard[key]).read_bytes() == (b.directory / shard[key]).read_bytes()
    # unpacking again keeps what is there; a damaged archive is refused
    pack_corpus.unpack(str(tmp_path / "corpus"), str(dest), ["yeast"], log=lambda m: None)
    archive = tmp_path / "corpus/corpus.bin.xz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 1
    archive.write_bytes(bytes(data))
    with pytest.raises(pack_corpus.PackError, match="sha256 differs"):
        pack_corpus.unpack(str(tmp_path / "corpus"), str(tmp_path / "device2"), None, log=lambda m: None)


def test_pack_refuses_a_file_that_is_not_the_manifests(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    config, _ = _corpus(tmp_path)
    (tmp_path / "results/pack/genomes/yeast/yeast_chrI_chrII.fa").write_bytes(b">chrI\nACGT\n")
    with pytest.raises(pack_corpus.PackError, match="declares"):
        pack_corpus.pack(str(config), None, str(tmp_path / "corpus"), None, log=lambda m: None)
    assert not (tmp_path / "corpus").exists()


def test_tokenize_and_pretrain_options_are_the_pipelines(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    config, _ = _corpus(tmp_path)
    pack_corpus.pack(str(config), None, str(tmp_path / "corpus"), ["yeast"], log=lambda m: None)
    jobs = pack_corpus.tokenize_commands(str(config), str(tmp_path / "corpus"), "D", ["yeast"])
    options = ["--window", "4096", "--stride", "4096", "--last-window", "keep", "--max-n-fraction", "0.5"]
    fasta = "D/genomes/yeast/yeast_chrI_chrII.fa"
    assert [argv for _, argv in jobs] == [
        ["genomamba", "tokenize", fasta, "-o", "D/tokens/yeast", *options, "--exclude-region", "chrII"],
        ["genomamba", "tokenize", fasta, "-o", "D/heldout_tokens/yeast", *options, "--region", "chrII"],
    ]
    assert pack_corpus.pretrain_args(str(config), "D", ["yeast"]) == [
        "--data", "D/tokens/yeast", "--val-data", "D/heldout_tokens/yeast", "--preset", "tiny",
        "--max-steps", "7", "--seq-len", "1024", "--batch-size", "8", "--seed", "0"]


def _returned(folder: Path, step: int) -> Path:
    """What a device job puts in $OUT: the run files and one checkpoint (real state files)."""
    folder.mkdir(parents=True)
    (folder / "run_config.json").write_text("{}\n")
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n"
                                                  for s in range(1, step + 1)))
    (folder / "job.log").write_text(f"job up to {step}\n")
    checkpoint = folder / "checkpoints" / f"step-{step:06d}"
    checkpoint.mkdir(parents=True)
    write_state_files(checkpoint, {"step": step, "w": torch.arange(5000.0)}, limit=8192)
    return folder


def test_take_back_moves_a_checked_run_into_place(tmp_path):
    run, history = tmp_path / ".carry/run", tmp_path / "history"
    assert pack_corpus.take_back(str(_returned(tmp_path / "one", 3)), str(run), str(history), print) == 3
    assert (run / "checkpoints/step-000003/manifest.json").is_file()
    assert lzma.decompress((run / "metrics.jsonl.xz").read_bytes()).decode().count("\n") == 3
    assert pack_corpus.take_back(str(_returned(tmp_path / "two", 5)), str(run), str(history), print) == 5
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000005"]
    assert (history / "previous-run/checkpoints/step-000003").is_dir()
    assert (history / "job-step-000005.log").read_text() == "job up to 5\n"
    # a part cut short in transit: nothing moves
    bad = _returned(tmp_path / "three", 8)
    part = next((bad / "checkpoints/step-000008").glob("part-*"))
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(IncompleteStateError):
        pack_corpus.take_back(str(bad), str(run), str(history), print)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000005"]
    shutil.rmtree(bad / "checkpoints")
    with pytest.raises(pack_corpus.PackError, match="one checkpoints/step-N"):
        pack_corpus.take_back(str(bad), str(run), str(history), print)
