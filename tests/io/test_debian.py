"""genomamba.io.debian and fetching a member of a .deb: tiny packages built here (ar + tar), no network."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import yaml

from genomamba.errors import InputDataError
from genomamba.io.debian import iter_deb_member, normalise_member
from genomamba.io.fetch import fetch_manifest
from genomamba.io.manifest import load_manifest

MEMBER = "./usr/share/doc/toy/genome.fa"
GENOME = b">chrT toy\n" + b"ACGT" * 3000 + b"\n"  # over one read chunk of the tests below


def _tar(files: dict[str, bytes], links: dict[str, str], compression: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}" if compression else "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    assert len(header) == 60
    return header + data + (b"\n" if len(data) % 2 else b"")


def make_deb(path: Path, *, compression: str = "xz", files: dict[str, bytes] | None = None) -> Path:
    """A minimal Debian package: debian-binary, control.tar.xz, data.tar.<compression>."""
    files = {"./usr/": b"", MEMBER: GENOME, "./usr/share/doc/toy/odd": b"x"} if files is None else files
    regular = {k: v for k, v in files.items() if not k.endswith("/")}
    data = _tar(regular, {"./usr/link.fa": MEMBER}, compression)
    control = _tar({"./control": b"Package: toy\nVersion: 1.0-1\n"}, {}, "xz")
    suffix = {"xz": ".xz", "gz": ".gz", "bz2": ".bz2", "": ""}[compression]
    path.write_bytes(
        b"!<arch>\n"
        + _ar_member("debian-binary", b"2.0\n")
        + _ar_member("control.tar.xz", control)
        + _ar_member(f"data.tar{suffix}", data)
    )
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("compression", ["xz", "gz", ""])
@pytest.mark.parametrize("spelling", [MEMBER, MEMBER[2:], MEMBER[1:]])
def test_member_is_streamed_out_of_the_package(tmp_path, compression, spelling):
    deb = make_deb(tmp_path / "toy.deb", compression=compression)
    chunks = list(iter_deb_member(deb, spelling, chunk_bytes=4096))
    assert b"".join(chunks) == GENOME and len(chunks) > 1


def test_normalise_member():
    assert normalise_member("./usr/x") == normalise_member("/usr/x") == normalise_member("usr/x") == "usr/x"


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("usr/share/doc/toy/missing.fa", "has no file usr/share/doc/toy/missing.fa"),
        ("usr/link.fa", f"is a link to {MEMBER}; name that file instead"),
    ],
)
def test_missing_member_or_link_is_an_input_error(tmp_path, member, message):
    deb = make_deb(tmp_path / "toy.deb")
    with pytest.raises(InputDataError, match=message):
        b"".join(iter_deb_member(deb, member))


def test_not_a_package_and_damaged_data_are_input_errors(tmp_path):
    plain = tmp_path / "plain.deb"
    plain.write_bytes(GENOME)
    with pytest.raises(InputDataError, match="not a Debian package"):
        b"".join(iter_deb_member(plain, MEMBER))
    deb = make_deb(tmp_path / "toy.deb").read_bytes()
    cut = tmp_path / "cut.deb"
    cut.write_bytes(deb[: len(deb) - 200])  # the data archive loses its end
    with pytest.raises(InputDataError, match="toy.deb|cut.deb"):
        b"".join(iter_deb_member(cut, MEMBER))


# --- genomamba fetch of a deb_member -------------------------------------------------------


def _deb_manifest(folder: Path, source: str, **fields) -> Path:
    entry = {"name": "genome.fa", "role": "fasta", "urls": [source], "deb_member": MEMBER, **fields}
    genome = {"name": "toy", "licence": "test", "citation": "none", "files": [entry]}
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"manifest_version": 1, "genomes": [genome]}))
    return path


def test_fetch_unpacks_and_verifies_the_member(tmp_path):
    deb = make_deb(tmp_path / "toy.deb")
    manifest = _deb_manifest(
        tmp_path,
        deb.as_uri(),
        sha256=_sha(GENOME),
        size=len(GENOME),
        deb_sha256=_sha(deb.read_bytes()),
        deb_size=deb.stat().st_size,
    )
    out = tmp_path / "out"
    [result] = fetch_manifest(load_manifest(manifest), out)
    assert (result.status, result.verified_by, result.sha256) == ("fetched", "manifest", _sha(GENOME))
    assert (out / "toy" / "genome.fa").read_bytes() == GENOME
    assert sorted(p.name for p in (out / "toy").iterdir()) == ["genome.fa"]  # no package left behind
    [again] = fetch_manifest(load_manifest(manifest), out)
    assert again.status == "up-to-date"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"deb_sha256": "a" * 64}, "expected package sha256 " + "a" * 64),
        ({"deb_size": 3}, "package size"),
        ({"sha256": "b" * 64}, "expected sha256 " + "b" * 64),
        ({"deb_member": "usr/none.fa"}, "the package has no file usr/none.fa"),
    ],
)
def test_fetch_of_wrong_package_or_member_leaves_nothing(tmp_path, fields, message):
    deb = make_deb(tmp_path / "toy.deb")
    manifest = _deb_manifest(tmp_path, deb.as_uri(), **{"sha256": _sha(GENOME), **fields})
    out = tmp_path / "out"
    with pytest.raises(InputDataError, match=message):
        fetch_manifest(load_manifest(manifest), out)
    left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert left == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"deb_member": None, "deb_sha256": "a" * 64}, "need deb_member"),
        ({"md5sums_url": "https://example.org/md5sum.txt"}, "md5sums_url cannot be used with deb_member"),
        ({"deb_sha256": "XYZ"}, "deb_sha256 must be 64 lower-case hex digits"),
        ({"deb_member": "./"}, "deb_member must name a file"),
    ],
)
def test_manifest_rejects_inconsistent_package_fields(tmp_path, fields, message):
    manifest = _deb_manifest(tmp_path, "https://example.org/toy.deb", sha256="a" * 64, **fields)
    data = yaml.safe_load(manifest.read_text())
    entry = data["genomes"][0]["files"][0]
    data["genomes"][0]["files"][0] = {k: v for k, v in entry.items() if v is not None}
    manifest.write_text(yaml.safe_dump(data))
    with pytest.raises(InputDataError, match=message):
        load_manifest(manifest)
