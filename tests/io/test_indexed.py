"""Indexed random access (genomamba.io.indexed): pyfaidx behind an index that is checked before
it is used, reused when samtools made it, kept in the per-user cache when the FASTA's folder cannot
be written, and a BGZF copy for plain gzip.

Read-only folders are real (chmod 0555) where that stops writes; as root it does not, so there
os.access is made to say no and writes into the folder fail with EACCES (injected at os.open,
open, os.mkdir and os.replace).
"""

from __future__ import annotations

import errno
import gzip
import json
import os

import numpy as np
import pytest
from Bio import bgzf

from genomamba import alphabet as ab
from genomamba.errors import EXIT_CANTCREAT, InputDataError
from genomamba.io import genome_cache, indexed
from genomamba.io.indexed import SIDECAR_SUFFIX, IndexedFasta, ensure_index
from tests.faults import refuse_writes

FASTA = b">chr1 first\nACGTACGTAC\nacgtnnRYAC\nGG\n>chr2\nTTTTCCCCAA\nA\n"
SEQ = {"chr1": b"ACGTACGTACacgtnnRYACGG", "chr2": b"TTTTCCCCAAA"}


SAMTOOLS_FAI = "chr1\t22\t12\t10\t11\nchr2\t11\t43\t10\t11\n"  # what `samtools faidx` writes for FASTA
ROOT = os.geteuid() == 0


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """Each test's own cache folder (GENOMAMBA_CACHE_DIR), outside tmp_path."""
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("GENOMAMBA_CACHE_DIR", str(root))
    return root / "fai"


@pytest.fixture
def builds(monkeypatch):
    """The FASTAs an index was built for, in order (indexed._build counted)."""
    built, real = [], indexed._build
    monkeypatch.setattr(indexed, "_build", lambda path, *a: built.append(path) or real(path, *a))
    return built


@pytest.fixture
def seal(monkeypatch):
    """``seal(folder)``: nothing can be written into ``folder`` any more, and os.access says so."""
    sealed = []

    def seal(folder):
        if ROOT:  # permission bits do not stop root: inject what they would do
            real_access = os.access

            def access(path, mode, *args, **kwargs):
                if mode & os.W_OK and os.path.realpath(path) == os.path.realpath(folder):
                    return False
                return real_access(path, mode, *args, **kwargs)

            monkeypatch.setattr(os, "access", access)
            refuse_writes(monkeypatch, folder, errno.EACCES)
        else:
            folder.chmod(0o555)
            sealed.append(folder)

    yield seal
    for folder in sealed:
        folder.chmod(0o755)


def snapshot(folder):
    """Name, size and modification time of every file in ``folder``."""
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir())


def cached_files(cache):
    """Every file under the cache folder, relative to it."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def fetch_all(fasta, **options):
    """Every record whole, [3, 9) and [9, end), read through IndexedFasta(fasta)."""
    with IndexedFasta(fasta, **options) as fa:
        assert fa.lengths == {name: len(seq) for name, seq in SEQ.items()}
        return {name: (fa.fetch(name, 0, len(seq)), fa.fetch(name, 3, 9), fa.fetch(name, 9, len(seq)))
                for name, seq in SEQ.items()}


EXPECTED = {name: (seq, seq[3:9], seq[9:]) for name, seq in SEQ.items()}


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
    assert sidecar["fasta"]["size"] == fasta.stat().st_size
    assert sidecar["source"] == os.path.realpath(fasta)


def test_bad_regions(fasta):
    with IndexedFasta(fasta) as fa:
        with pytest.raises(InputDataError, match="no record named 'chrX'"):
            fa.fetch("chrX", 0, 1)
        with pytest.raises(InputDataError, match="outside 'chr2' of length 11"):
            fa.fetch("chr2", 5, 12)
        with pytest.raises(InputDataError):
            fa.fetch("chr2", 5, 4)


# -- an index genomamba built: used while the FASTA is the same, rebuilt when it changed ------------


def test_own_index_is_reused_without_a_rebuild(tmp_path, builds, cache):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    notes = []
    assert fetch_all(path, note=notes.append) == EXPECTED
    before = snapshot(tmp_path)
    assert fetch_all(path, note=notes.append) == EXPECTED
    assert builds == [str(path)] and notes == [] and snapshot(tmp_path) == before
    assert cached_files(cache) == []


def test_same_size_edit_with_the_old_mtime_is_caught_and_rebuilt(tmp_path, builds):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    IndexedFasta(path).close()
    stat = path.stat()
    path.write_bytes(FASTA.replace(b"TTTT", b"GGGG"))  # same size, same line layout
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    notes = []
    with IndexedFasta(path, note=notes.append) as fa:
        assert fa.fetch("chr2", 0, 4) == b"GGGG"
    assert notes == [f"{path}: {path} changed (first or last MiB) since {path}.fai was built; rebuilt it"]
    assert len(builds) == 2


def test_grown_fasta_is_caught_and_rebuilt(tmp_path):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    IndexedFasta(path).close()
    path.write_bytes(FASTA + b">chr3\nAC\n")
    notes = []
    with IndexedFasta(path, note=notes.append) as fa:
        assert fa.fetch("chr3", 0, 2) == b"AC"
    assert len(notes) == 1 and "changed (size, modification time, first or last MiB)" in notes[0]


def test_edited_fai_is_no_longer_ours_and_is_left_alone(tmp_path, cache):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    index = ensure_index(path)
    with open(index.fai, "a") as handle:
        handle.write("chr9\t1\t1\t1\t2\n")
    edited = open(index.fai).read()
    notes = []
    again = ensure_index(path, note=notes.append)
    assert again.fai.startswith(str(cache)) and open(index.fai).read() == edited
    assert "record 'chr9' starts at byte 1, inside 'chr2'" in notes[0]
    assert "left as it is: genomamba did not write it" in notes[0]


def test_own_gzi_deleted_is_rebuilt_beside_but_a_lone_samtools_fai_is_left_alone(tmp_path, cache):
    path = tmp_path / "g.fa.gz"
    write_bgzf(path, FASTA)
    index = ensure_index(path)
    os.unlink(index.gzi)
    notes = []
    assert ensure_index(path, note=notes.append) == index and os.path.exists(index.gzi)
    assert notes == [f"{path}: {path}.gzi is missing; rebuilt it"]
    os.unlink(index.sidecar)
    os.unlink(index.gzi)  # now a .fai alone, as if samtools had made it
    assert ensure_index(path, note=notes.append).fai.startswith(str(cache))
    assert notes[1].startswith(f"{path}: {path}.gzi is missing (left as it is: genomamba did not write it)")
    assert sorted(os.listdir(tmp_path)) == ["g.fa.gz", "g.fa.gz.fai"]


def test_sidecar_of_an_earlier_genomamba_is_rebuilt(tmp_path):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    index = ensure_index(path)
    meta = json.loads(open(index.sidecar).read())
    meta.pop("fasta")
    meta.update(fasta_size=len(FASTA), fasta_sha256="0" * 64)  # the format before fingerprints
    open(index.sidecar, "w").write(json.dumps(meta))
    notes = []
    assert ensure_index(path, note=notes.append) == index
    assert notes == [f"{path}: {path}.fai was built by an earlier genomamba; rebuilt it"]


# -- an index samtools made: reused as it is when it is valid and current ------------------------------


def test_valid_samtools_fai_is_used_and_nothing_is_written(tmp_path, builds, cache, seal):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    (tmp_path / "g.fa.fai").write_text(SAMTOOLS_FAI)
    seal(tmp_path)
    before = snapshot(tmp_path)
    notes = []
    assert fetch_all(path, note=notes.append) == EXPECTED
    assert builds == [] and notes == [] and snapshot(tmp_path) == before and not cache.exists()


def test_valid_samtools_fai_in_a_writable_folder_gets_no_sidecar(tmp_path, builds):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    (tmp_path / "g.fa.fai").write_text(SAMTOOLS_FAI)
    before = snapshot(tmp_path)
    assert fetch_all(path) == EXPECTED
    assert builds == [] and snapshot(tmp_path) == before


def test_stale_samtools_fai_is_left_alone_and_a_cached_index_used(tmp_path, builds, cache):
    path = tmp_path / "g.fa"
    (tmp_path / "g.fa.fai").write_text(SAMTOOLS_FAI)
    path.write_bytes(FASTA)
    fai_mtime = (tmp_path / "g.fa.fai").stat().st_mtime_ns
    os.utime(path, ns=(fai_mtime + 10**9, fai_mtime + 10**9))  # the FASTA is newer than its .fai
    before = snapshot(tmp_path)
    notes = []
    assert fetch_all(path, note=notes.append) == EXPECTED
    (entry,) = os.listdir(cache)
    assert notes == [f"{path}: {path}.fai is older than {path} (left as it is: genomamba did not write it); "
                     f"its index is kept in {cache / entry}"]
    assert snapshot(tmp_path) == before and len(builds) == 1
    assert fetch_all(path, note=notes.append) == EXPECTED  # again: the cached index, no rebuild
    assert len(builds) == 1 and notes[1].endswith(f"; using the index kept in {cache / entry}")


def test_wrong_samtools_fai_is_left_alone_and_a_cached_index_used(tmp_path, builds, cache):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    wrong = SAMTOOLS_FAI.replace("\t43\t", "\t44\t")  # chr2 one byte off: newer than the FASTA, parses, fits
    (tmp_path / "g.fa.fai").write_text(wrong)
    notes = []
    assert fetch_all(path, note=notes.append) == EXPECTED
    assert "record 'chr2' does not start after a header line" in notes[0]
    assert (tmp_path / "g.fa.fai").read_text() == wrong
    assert not (tmp_path / ("g.fa" + SIDECAR_SUFFIX)).exists()
    (entry,) = os.listdir(cache)
    assert cached_files(cache) == [f"{entry}/index.fai", f"{entry}/index.json"]


# -- a folder that cannot be written: the index goes to the cache, nothing beside the input -------------


@pytest.mark.parametrize("kind", ["plain", "bgzf"])
def test_read_only_folder_keeps_the_index_in_the_cache(tmp_path, builds, cache, seal, kind):
    folder = tmp_path / "genomes"
    folder.mkdir()
    path = folder / ("g.fa" if kind == "plain" else "g.fa.gz")
    if kind == "plain":
        path.write_bytes(FASTA)
    else:
        write_bgzf(path, FASTA)
    seal(folder)
    notes = []
    assert fetch_all(path, note=notes.append) == EXPECTED
    assert os.listdir(folder) == [path.name]  # nothing beside the input
    (entry,) = os.listdir(cache)
    assert notes == [f"{path}: {folder} cannot be written; its index is kept in {cache / entry}"]
    expected = ["index.fai", "index.json"] + (["index.gzi"] if kind == "bgzf" else [])
    assert cached_files(cache) == sorted(f"{entry}/{name}" for name in expected)
    first = snapshot(cache / entry)
    assert fetch_all(path, note=notes.append) == EXPECTED  # a second open: the cache, not rebuilt
    assert len(builds) == 1 and len(notes) == 1 and snapshot(cache / entry) == first


def test_a_write_refused_where_os_access_allows_it_falls_back_to_the_cache(tmp_path, monkeypatch, builds):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    refuse_writes(monkeypatch, tmp_path, errno.EROFS)  # a read-only mount that os.access does not see
    assert os.access(tmp_path, os.W_OK)
    notes = []
    assert fetch_all(path, note=notes.append) == EXPECTED
    assert os.listdir(tmp_path) == ["g.fa"] and len(builds) == 1
    assert "; its index is kept in" in notes[0]


def test_cache_that_cannot_be_written_either_is_one_error(tmp_path, cache, seal):
    folder = tmp_path / "genomes"
    folder.mkdir()
    (folder / "g.fa").write_bytes(FASTA)
    cache.parent.mkdir(exist_ok=True)
    seal(folder)
    seal(cache.parent)
    with pytest.raises(genome_cache.CacheUnwritableError) as caught:
        IndexedFasta(folder / "g.fa")
    assert caught.value.exit_code == EXIT_CANTCREAT
    message = str(caught.value)
    assert message.startswith(f"{folder / 'g.fa'}: cannot keep its index in the cache {cache}/g.fa-")
    assert message.endswith("; set GENOMAMBA_CACHE_DIR to a writable folder")
    assert os.listdir(folder) == ["g.fa"] and os.listdir(cache.parent) == []


def test_rebuild_in_a_read_only_folder_with_a_samtools_fai(tmp_path, builds, seal):
    path = tmp_path / "g.fa"
    path.write_bytes(FASTA)
    (tmp_path / "g.fa.fai").write_text(SAMTOOLS_FAI)
    seal(tmp_path)
    notes = []
    assert fetch_all(path, rebuild=True, note=notes.append) == EXPECTED
    assert len(builds) == 1 and f"{path}.fai was not written by genomamba (left as it is)" in notes[0]


# -- plain gzip: read through a cached BGZF copy ------------------------------------------------------


def test_plain_gzip_reads_as_the_uncompressed_one_through_a_cached_copy(tmp_path, monkeypatch, cache, builds):
    plain = tmp_path / "g.fa"
    plain.write_bytes(FASTA)
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(FASTA))
    copies, real = [], genome_cache._write_bgzf
    monkeypatch.setattr(genome_cache, "_write_bgzf", lambda *a: copies.append(a) or real(*a))
    notes = []
    with IndexedFasta(plain) as a, IndexedFasta(path, note=notes.append) as b:
        assert a.lengths == b.lengths
        for name, length in a.lengths.items():
            for start in range(length + 1):
                for end in range(start, length + 1):
                    assert b.fetch(name, start, end) == a.fetch(name, start, end)
    (entry,) = os.listdir(cache)
    assert notes == [
        f"{path}: plain gzip cannot be read at random positions; making a BGZF copy of it (about "
        f"{path.stat().st_size} bytes, once) in {cache / entry}. Recompressing it with bgzip avoids the "
        f"copy: zcat {path} | bgzip > {plain}.bgz"
    ]
    copy = cache / entry / genome_cache.BGZF_COPY
    with bgzf.BgzfReader(str(copy), "rb") as reader:
        assert reader.read(len(FASTA) + 1) == FASTA
    assert sorted(os.listdir(tmp_path)) == ["g.fa", "g.fa.fai", "g.fa.fai.genomamba.json", "g.fa.gz"]
    first = snapshot(cache / entry)
    assert fetch_all(path, note=notes.append) == EXPECTED  # a second open: the same copy and index
    assert len(copies) == 1 and len(notes) == 1 and snapshot(cache / entry) == first
    assert builds == [str(plain), str(copy)]


def test_truncated_plain_gzip_is_an_input_error_and_leaves_no_copy(tmp_path, cache):
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(FASTA)[:-12])
    with pytest.raises(InputDataError, match="truncated gzip stream"):
        IndexedFasta(path, note=lambda message: None)
    assert cached_files(cache) == [] and os.listdir(tmp_path) == ["g.fa.gz"]


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
