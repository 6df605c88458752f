"""Indexed random access (genomamba.io.indexed): pyfaidx behind a checked .fai."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
from Bio import bgzf

from genomamba import alphabet as ab
from genomamba.errors import InputDataError
from genomamba.io.indexed import SIDECAR_SUFFIX, IndexedFasta, ensure_index

FASTA = b">chr1 first\nACGTACGTAC\nacgtnnRYAC\nGG\n>chr2\nTTTTCCCCAA\nA\n"
SEQ = {"chr1": b"ACGTACGTACacgtnnRYACGG", "chr2": b"TTTTCCCCAAA"}


def write_bgzf(path, data):
    writer = bgzf.BgzfWriter(str(path), "wb")
    writer.write(data)
    writer.close()


@pytest.fixture(params=["plain", "bgzf"])
def fasta(tmp_path, request):
    if request.param == "plain":
        path = tmp_path / "g.fa"
        path.write_bytes(FASTA)
    else:
        path = tmp_path / "g.fa.gz"
        write_bgzf(path, FASTA)
    return path


def test_fetch_every_region(fasta):
    with IndexedFasta(fasta) as fa:
        assert fa.lengths == {"chr1": 22, "chr2": 11}
        for name, seq in SEQ.items():
            for start in range(len(seq) + 1):
                for end in range(start, len(seq) + 1):
                    assert fa.fetch(name, start, end) == seq[start:end]
        ids, mask = fa.fetch_ids("chr1", 8, 18)
        expected_ids, expected_mask, _ = ab.encode(SEQ["chr1"][8:18], want_softmask=True)
        assert np.array_equal(ids, expected_ids) and np.array_equal(mask, expected_mask)
    sidecar = json.loads((fasta.parent / (fasta.name + SIDECAR_SUFFIX)).read_text())
    assert sidecar["fasta_size"] == fasta.stat().st_size


def test_bad_regions(fasta):
    with IndexedFasta(fasta) as fa:
        with pytest.raises(InputDataError, match="no record named 'chrX'"):
            fa.fetch("chrX", 0, 1)
        with pytest.raises(InputDataError, match="outside 'chr2' of length 11"):
            fa.fetch("chr2", 5, 12)
        with pytest.raises(InputDataError):
            fa.fetch("chr2", 5, 4)


def test_plain_gzip_says_recompress_with_bgzip(tmp_path):
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(FASTA))
    with pytest.raises(
        InputDataError, match="plain gzip cannot be read at random positions; recompress it with bgzip"
    ):
        IndexedFasta(path)
    assert not os.path.exists(str(path) + ".fai")


def test_same_size_edit_is_caught_by_sha256_not_mtime(tmp_path):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    IndexedFasta(path).close()
    stat = path.stat()
    path.write_bytes(FASTA.replace(b"TTTT", b"GGGG"))  # same size, same line layout
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    with pytest.raises(InputDataError, match="stale or mismatched index: the FASTA's sha256 differs"):
        IndexedFasta(path)
    with IndexedFasta(path, rebuild=True) as fa:
        assert fa.fetch("chr2", 0, 4) == b"GGGG"


def test_grown_fasta_is_caught_by_size(tmp_path):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    IndexedFasta(path).close()
    path.write_bytes(FASTA + b">chr3\nAC\n")
    with pytest.raises(InputDataError, match=r"the FASTA is now \d+ bytes"):
        IndexedFasta(path)


def test_foreign_fai_is_checked_against_a_fresh_build(tmp_path):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    good = "chr1\t22\t12\t10\t11\nchr2\t11\t43\t10\t11\n"  # what samtools faidx writes
    (tmp_path / "g.fa.fai").write_text(good)
    with IndexedFasta(path) as fa:
        assert fa.fetch("chr2", 0, 11) == SEQ["chr2"]
    assert (tmp_path / ("g.fa" + SIDECAR_SUFFIX)).exists()
    (tmp_path / ("g.fa" + SIDECAR_SUFFIX)).unlink()
    (tmp_path / "g.fa.fai").write_text(good.replace("\t43\t", "\t44\t"))
    with pytest.raises(InputDataError, match="does not describe this FASTA"):
        IndexedFasta(path)


def test_edited_fai_is_caught(tmp_path):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    paths = ensure_index(path)
    with open(paths["fai"], "a") as handle:
        handle.write("chr9\t1\t1\t1\t2\n")
    with pytest.raises(InputDataError, match="was changed after it was built"):
        ensure_index(path)


def test_unindexable_layout_is_an_input_error(tmp_path):
    path = tmp_path / "g.fa"
    path.write_bytes(b">a\nACGT\nAC\nACGT\n")  # a short line in the middle of a record
    with pytest.raises(InputDataError, match="cannot be indexed"):
        IndexedFasta(path)
    assert not (tmp_path / "g.fa.fai").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["g.fa"]  # no temporary folder left


def test_names_must_agree_with_compression(tmp_path):
    path = tmp_path / "g.fa"
    write_bgzf(path, FASTA)
    with pytest.raises(InputDataError, match="BGZF-compressed, but its name does not end in .gz"):
        IndexedFasta(path)
    other = tmp_path / "h.fa.gz"
    other.write_bytes(FASTA)
    with pytest.raises(InputDataError, match="plain text, but its name ends in .gz"):
        IndexedFasta(other)


def test_demo_lambda_bgzf_and_plain_agree(tmp_path, demo_data):
    plain, bgz = demo_data / "lambda_virus.fa", demo_data / "lambda_virus.fa.bgz"
    if not (plain.exists() and bgz.exists()):
        pytest.skip("demo genomes not present in data/demo")
    copies = []
    for source in (plain, bgz):  # the index files are written next to the FASTA: use copies
        copy = tmp_path / source.name
        copy.write_bytes(source.read_bytes())
        copies.append(copy)
    rng = np.random.default_rng(2)
    with IndexedFasta(copies[0]) as a, IndexedFasta(copies[1]) as b:
        ((name, length),) = a.lengths.items()
        assert b.lengths == {name: length} and length == 48502
        for _ in range(50):
            start = int(rng.integers(0, length))
            end = int(rng.integers(start, min(length, start + 5000) + 1))
            assert a.fetch(name, start, end) == b.fetch(name, start, end)
        assert len(b.fetch(name, 0, length)) == length
