"""genomamba.io.fetch / manifest and `genomamba fetch`: local files and file:// URLs only, no network."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.errors import EXIT_DATA, EXIT_UNAVAILABLE, InputDataError, UnavailableError
from genomamba.io.fetch import LOCK_NAME, FetchLock, fetch_manifest, sha256_file
from genomamba.io.manifest import Manifest, load_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = b">chrT test\nACGTACGTNNacgt\nGGCC\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_manifest(folder: Path, files: list[dict], name: str = "toy") -> Path:
    genome = {"name": name, "licence": "test data", "citation": "none", "files": files}
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"manifest_version": 1, "genomes": [genome]}))
    return path


def _entry(**fields) -> dict:
    """A manifest file entry for ``t.fa`` with role fasta; ``fields`` add keys or replace these two."""
    return {"name": "t.fa", "role": "fasta", **fields}


def _one_file_manifest(folder: Path, **fields) -> Manifest:
    """Write in ``folder``, and load, a manifest whose genome ``toy`` lists one ``_entry(**fields)``."""
    return load_manifest(_write_manifest(folder, [_entry(**fields)]))


def _source(folder: Path, data: bytes = PAYLOAD, name: str = "src.fa") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _leftovers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- the committed demo data -------------------------------------------------------------


def test_demo_manifest_matches_committed_files(demo_data):
    manifest = load_manifest(REPO_ROOT / "data_manifests" / "demo.yaml")
    assert set(manifest.genomes) == {"lambda", "lambda_plain", "yeast_chrI_chrII"}
    for genome in manifest.genomes.values():
        for entry in genome.files:
            assert entry.path is not None and entry.path.parent == demo_data
            assert entry.path.stat().st_size == entry.size, entry.name
            assert sha256_file(entry.path) == entry.sha256, entry.name


@pytest.mark.parametrize("name", ["demo.yaml", "human.yaml", "yeast.yaml"])
def test_every_shipped_manifest_is_valid(name):
    manifest = load_manifest(REPO_ROOT / "data_manifests" / name)
    for genome in manifest.genomes.values():
        assert genome.fasta_files(), genome.name
        for entry in genome.files:
            # a missing digest must be declared, never silently absent
            assert entry.sha256 is not None or entry.verify == "required-on-first-fetch"


def test_pretrain_corpus_names_each_debian_package_and_holdout():
    manifest = load_manifest(REPO_ROOT / "data_manifests" / "pretrain_corpus.yaml")
    for genome in manifest.genomes.values():
        assert genome.species and genome.citation and "Debian" in genome.licence, genome.name
        for entry in genome.files:
            # the pool file name carries the package and its version (less any epoch)
            version = entry.deb_version.split(":", 1)[-1]
            [url] = entry.urls
            assert url.startswith("https://deb.debian.org/debian/pool/main/"), url
            assert url.endswith(f"/{entry.deb_package}_{version}_all.deb"), url
            assert entry.deb_member and entry.deb_sha256 and entry.deb_size and entry.sha256 and entry.size
        assert genome.fasta_files() and genome.bases and genome.holdout, genome.name


# --- fetching ------------------------------------------------------------------------------


@pytest.fixture
def good_local(tmp_path) -> tuple[Path, Manifest]:
    """A local source file holding PAYLOAD and a manifest listing it as toy/t.fa with its right digest."""
    src = _source(tmp_path / "src")
    return src, _one_file_manifest(tmp_path, path=str(src), sha256=_sha(PAYLOAD))


def test_good_checksum_is_fetched(tmp_path, good_local):
    _, manifest = good_local
    out = tmp_path / "out"
    [result] = fetch_manifest(manifest, out)
    assert result.path == out / "toy" / "t.fa"
    assert result.path.read_bytes() == PAYLOAD
    assert (result.status, result.verified_by, result.sha256) == ("fetched", "manifest", _sha(PAYLOAD))
    assert _leftovers(out) == [result.path]  # no temporary files and no lock for a known digest


def test_bad_checksum_is_an_input_error_and_leaves_nothing(tmp_path):
    src = _source(tmp_path / "src")
    wrong = "0" * 64
    manifest = _one_file_manifest(tmp_path, path=str(src), sha256=wrong)
    out = tmp_path / "out"
    with pytest.raises(InputDataError) as info:
        fetch_manifest(manifest, out)
    message = str(info.value)
    assert info.value.exit_code == EXIT_DATA == 65
    assert "toy/t.fa" in message and wrong in message and _sha(PAYLOAD) in message
    assert _leftovers(out) == []
    assert not (out / "toy").exists()


def test_size_mismatch_is_reported(tmp_path):
    src = _source(tmp_path / "src")
    manifest = _one_file_manifest(tmp_path, path=str(src), sha256=_sha(PAYLOAD), size=3)
    with pytest.raises(InputDataError, match=rf"size {len(PAYLOAD)} bytes, expected 3"):
        fetch_manifest(manifest, tmp_path / "out")
    assert _leftovers(tmp_path / "out") == []


def test_missing_local_file_is_an_input_error(tmp_path):
    missing = tmp_path / "nope.fa"
    manifest = _one_file_manifest(tmp_path, path=str(missing), sha256="a" * 64)
    with pytest.raises(InputDataError, match="nope.fa") as info:
        fetch_manifest(manifest, tmp_path / "out")
    assert info.value.exit_code == 65
    assert _leftovers(tmp_path / "out") == []


def test_unreachable_urls_are_unavailable(tmp_path):
    url = (tmp_path / "gone.fa").as_uri()
    manifest = _one_file_manifest(tmp_path, urls=[url], sha256="a" * 64)
    with pytest.raises(UnavailableError, match="gone.fa") as info:
        fetch_manifest(manifest, tmp_path / "out")
    assert info.value.exit_code == EXIT_UNAVAILABLE == 69


def test_existing_target_with_right_checksum_is_a_no_op(tmp_path, good_local):
    src, manifest = good_local
    out = tmp_path / "out"
    [first] = fetch_manifest(manifest, out)
    before = first.path.stat()
    src.unlink()  # a no-op must not even need the source
    [second] = fetch_manifest(manifest, out)
    after = second.path.stat()
    assert second.status == "up-to-date"
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_existing_target_with_wrong_bytes_is_replaced(tmp_path, good_local):
    _, manifest = good_local
    target = tmp_path / "out" / "toy" / "t.fa"
    target.parent.mkdir(parents=True)
    target.write_bytes(b">stale\nAAAA\n")
    [result] = fetch_manifest(manifest, tmp_path / "out")
    assert result.status == "fetched" and target.read_bytes() == PAYLOAD


def test_mirrors_are_tried_in_order(tmp_path):
    bad = _source(tmp_path / "a", b">corrupt\nAC\n")
    good = _source(tmp_path / "b")
    urls = [(tmp_path / "missing.fa").as_uri(), bad.as_uri(), good.as_uri()]
    manifest = _one_file_manifest(tmp_path, urls=urls, sha256=_sha(PAYLOAD))
    [result] = fetch_manifest(manifest, tmp_path / "out")
    assert result.source == good.as_uri()
    assert result.path.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path / "out") == [result.path]


def test_first_fetch_records_digest_and_later_fetches_must_match(tmp_path):
    src = _source(tmp_path / "src")
    manifest = _one_file_manifest(tmp_path, path=str(src), sha256=None, verify="required-on-first-fetch")
    out = tmp_path / "out"
    [first] = fetch_manifest(manifest, out)
    assert first.verified_by == "first-fetch"
    assert FetchLock(out / LOCK_NAME).get("toy", "t.fa") == _sha(PAYLOAD)

    [again] = fetch_manifest(manifest, out)
    assert (again.status, again.verified_by) == ("up-to-date", "lock")

    # upstream changes the file: the recorded digest catches it
    first.path.unlink()
    src.write_bytes(PAYLOAD + b"ACGT\n")
    with pytest.raises(InputDataError, match=f"expected sha256 {_sha(PAYLOAD)}"):
        fetch_manifest(manifest, out)
    assert not first.path.exists()


@pytest.mark.parametrize("listed_ok", [True, False])
def test_published_md5_list_is_checked_on_first_fetch(tmp_path, listed_ok):
    src = _source(tmp_path / "src", name="t.fa.gz")
    md5 = hashlib.md5(PAYLOAD).hexdigest() if listed_ok else "f" * 32
    sums = tmp_path / "md5sum.txt"
    sums.write_text(f"{'0' * 32}  other.fa.gz\n{md5}  ./t.fa.gz\n")
    manifest = _one_file_manifest(
        tmp_path,
        name="t.fa.gz",
        urls=[src.as_uri()],
        md5sums_url=sums.as_uri(),
        sha256=None,
        verify="required-on-first-fetch",
    )
    out = tmp_path / "out"
    if listed_ok:
        [result] = fetch_manifest(manifest, out)
        assert result.verified_by == "md5sums"
    else:
        with pytest.raises(InputDataError, match=f"expected md5 {'f' * 32}"):
            fetch_manifest(manifest, out)
        assert _leftovers(out) == []


def test_lock_keeps_entries_from_separate_writers(tmp_path):
    FetchLock(tmp_path / LOCK_NAME).record("g", "a.fa", "1" * 64, 1, "x")
    FetchLock(tmp_path / LOCK_NAME).record("g", "b.fa", "2" * 64, 2, "y")
    lock = FetchLock(tmp_path / LOCK_NAME)
    assert (lock.get("g", "a.fa"), lock.get("g", "b.fa"), lock.get("g", "c.fa")) == ("1" * 64, "2" * 64, None)


def test_unknown_genome_or_file_is_an_input_error(tmp_path):
    manifest = load_manifest(REPO_ROOT / "data_manifests" / "demo.yaml")
    with pytest.raises(InputDataError, match="no genome named 'mouse'; known: lambda"):
        fetch_manifest(manifest, tmp_path, genomes=["mouse"])
    with pytest.raises(InputDataError, match="no file named"):
        fetch_manifest(manifest, tmp_path, genomes=["lambda"], files=["other.fa"])


# --- manifest validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha": "x"}, r"unknown key\(s\) \['sha'\]"),
        ({"sha256": None}, "verify must say 'required-on-first-fetch'"),
        ({"sha256": "ABC"}, "64 lower-case hex digits"),
        ({"role": "reads"}, "role must be one of"),
        ({"name": "../escape.fa"}, "must match"),
        ({"size": -1}, "non-negative integer"),
        ({"path": None, "urls": ["http//no-scheme"]}, "urls must be a list of"),
        ({"path": None}, "needs a path or at least one URL"),
    ],
)
def test_manifest_errors_name_the_entry(tmp_path, change, message):
    entry = {**_entry(path="t.fa", sha256="a" * 64), **change}
    entry = {k: v for k, v in entry.items() if not (k == "path" and v is None)}
    path = _write_manifest(tmp_path, [entry])
    with pytest.raises(InputDataError, match=message) as info:
        load_manifest(path)
    assert str(path) in str(info.value) and "genomes[0] (toy) files[0]" in str(info.value)


def test_duplicate_genomes_and_bad_version_are_rejected(tmp_path):
    genome = {
        "name": "g",
        "licence": "l",
        "citation": "c",
        "files": [{"name": "a", "role": "fasta", "path": "a", "sha256": "a" * 64}],
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"manifest_version": 1, "genomes": [genome, genome]}))
    with pytest.raises(InputDataError, match="duplicate genome name 'g'"):
        load_manifest(path)
    path.write_text(yaml.safe_dump({"manifest_version": 2, "genomes": [genome]}))
    with pytest.raises(InputDataError, match="manifest_version 2 is not supported"):
        load_manifest(path)


# --- command line --------------------------------------------------------------------------


def test_cli_fetches_demo_genome_and_reports_tsv(tmp_path):
    runner = CliRunner()
    args = ["fetch", str(REPO_ROOT / "data_manifests" / "demo.yaml"), "-g", "lambda", "-o", str(tmp_path)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.strip().split("\n")
    assert header.split("\t")[:2] == ["genome", "file"]
    fields = row.split("\t")
    assert fields[0:2] == ["lambda", "lambda_virus.fa.bgz"] and fields[5:] == ["fetched", "manifest"]
    assert sha256_file(tmp_path / "lambda" / "lambda_virus.fa.bgz") == fields[3]
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "\tup-to-date\t" in again.stdout


def test_cli_bad_checksum_exits_65(tmp_path):
    src = _source(tmp_path / "src")
    manifest = _write_manifest(tmp_path, [_entry(path=str(src), sha256="b" * 64)])
    result = CliRunner().invoke(main, ["fetch", str(manifest), "-o", str(tmp_path / "out")])
    assert result.exit_code == 65
    assert "checksum mismatch for toy/t.fa" in result.stderr and "b" * 64 in result.stderr
    assert _leftovers(tmp_path / "out") == []


def test_cli_requires_out_dir_unless_listing():
    manifest = str(REPO_ROOT / "data_manifests" / "demo.yaml")
    assert CliRunner().invoke(main, ["fetch", manifest]).exit_code == 2
    listing = CliRunner().invoke(main, ["fetch", manifest, "--list"])
    assert listing.exit_code == 0 and "yeast_chrI_chrII.gff3\tannotation" in listing.stdout


# --- failures leave no folder behind ------------------------------------------------------------


def test_a_failed_fetch_removes_the_folders_it_made(tmp_path):
    manifest = _one_file_manifest(tmp_path, path=str(tmp_path / "nope.fa"), sha256="a" * 64)
    out = tmp_path / "new" / "genomes"
    with pytest.raises(InputDataError):
        fetch_manifest(manifest, out)
    assert not (tmp_path / "new").exists()


def test_cli_disk_full_while_fetching_exits_74_and_leaves_nothing(tmp_path, good_local, monkeypatch):
    import errno
    import os

    from genomamba.errors import EXIT_IOERR

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # the data of a full disk fails at the latest when synced
    manifest_path = tmp_path / "manifest.yaml"
    out = tmp_path / "genomes"
    result = CliRunner().invoke(main, ["fetch", str(manifest_path), "-o", str(out)])
    assert result.exit_code == EXIT_IOERR, result.output
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [f"error: {out}: no space left on device; free some space or write the output elsewhere"]
    assert "Traceback" not in result.output
    assert not out.exists()
