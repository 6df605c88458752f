"""The per-user genome cache (genomamba.io.genome_cache): where it is, what tells versions of a file
apart, and a BGZF copy that concurrent processes make once and never see half-written."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from Bio import bgzf

from genomamba.io import genome_cache
from genomamba.io.genome_cache import BGZF_COPY, EDGE_BYTES, bgzf_copy, cache_folder, cache_root, fingerprint
from tests.io.test_locks import dead_pid

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("GENOMAMBA_CACHE_DIR", str(root))
    return root / "fai"


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GENOMAMBA_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "mine" / "fai"
    monkeypatch.delenv("GENOMAMBA_CACHE_DIR")
    assert cache_root() == tmp_path / "xdg" / "genomamba" / "fai"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "genomamba" / "fai"


def test_fingerprint_sees_size_mtime_and_both_ends_but_not_the_middle(tmp_path):
    path = tmp_path / "g.fa"
    data = np.random.default_rng(0).choice(list(b"ACGT"), 3 * EDGE_BYTES).astype(np.uint8).tobytes()
    path.write_bytes(data)
    stat = path.stat()
    first = fingerprint(path)
    assert first["size"] == len(data) and first["mtime_ns"] == stat.st_mtime_ns

    def edited(position: int) -> dict:
        copy = bytearray(data)
        copy[position] = ord("N")
        path.write_bytes(copy)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the old mtime kept on purpose
        return fingerprint(path)

    assert edited(10)["edges_sha256"] != first["edges_sha256"]
    assert edited(len(data) - 10)["edges_sha256"] != first["edges_sha256"]
    assert edited(len(data) // 2) == first  # the documented blind spot: same size, mtime and ends
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: same bytes, new mtime
    assert fingerprint(path) == {**first, "mtime_ns": stat.st_mtime_ns + 10**9}
    path.write_bytes(data + b"A")
    assert fingerprint(path)["size"] == len(data) + 1


def test_cache_folder_is_one_per_version_and_shared_by_links(tmp_path, cache):
    path = tmp_path / "g.fa.gz"
    path.write_bytes(b"x")
    link = tmp_path / "link.fa.gz"
    link.symlink_to(path)
    folder = cache_folder(path)
    assert folder.parent == cache and folder.name.startswith("g.fa.gz-")
    assert cache_folder(link) == folder
    path.write_bytes(b"xy")
    assert cache_folder(path) != folder


def test_copy_of_multi_member_gzip_and_stale_temporary_removed(tmp_path):
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(b">a\nACGT\n") + gzip.compress(b">b\nGG\n"))  # two members, as `cat` makes
    folder = cache_folder(path)
    folder.mkdir(parents=True)
    stale = folder / f".{BGZF_COPY}.tmp-{dead_pid()}.gz"  # left by a killed copy
    stale.write_bytes(b"half")
    notes = []
    copy = bgzf_copy(path, note=notes.append)
    assert copy == str(folder / BGZF_COPY) and not stale.exists()
    with bgzf.BgzfReader(copy, "rb") as reader:
        assert reader.read(100) == b">a\nACGT\n>b\nGG\n"
    assert "making a BGZF copy" in notes[-1] and any("removed 1 temporary" in n for n in notes)
    assert sorted(os.listdir(folder)) == [BGZF_COPY]


def test_a_copy_without_its_end_marker_is_made_again(tmp_path):
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(b">a\nACGT\n"))
    copy = Path(bgzf_copy(path, note=lambda m: None))
    copy.write_bytes(copy.read_bytes()[:-28])  # damaged after it was made
    notes = []
    assert bgzf_copy(path, note=notes.append) == str(copy) and len(notes) == 1
    assert copy.read_bytes().endswith(genome_cache.BGZF_EOF)


_OPEN_AT = """
import sys, time
from genomamba.io.indexed import IndexedFasta
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start together
with IndexedFasta(sys.argv[1]) as fasta:
    print(fasta.fetch("r1", 1000, 1060).decode())
"""


def test_two_processes_opening_one_gzip_genome_make_one_copy(tmp_path, cache):
    rng = np.random.default_rng(1)
    records = [rng.choice(list(b"ACGT"), 1_500_000).astype(np.uint8).tobytes() for _ in range(2)]
    text = b"".join(b">r%d\n" % i + b"\n".join(r[j:j + 60] for j in range(0, len(r), 60)) + b"\n"
                    for i, r in enumerate(records))
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(text, compresslevel=1))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = f"{time.time() + 1.5}"  # after both have imported genomamba
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, str(path), start], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], results
    assert [out.strip() for out, _ in results] == [records[1][1000:1060].decode()] * 2
    assert sum(err.count("making a BGZF copy") for _, err in results) == 1, results
    (folder,) = cache.iterdir()
    assert sorted(os.listdir(folder)) == [BGZF_COPY, f"{BGZF_COPY}.fai", f"{BGZF_COPY}.fai.genomamba.json",
                                          f"{BGZF_COPY}.gzi"]
