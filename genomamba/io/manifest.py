"""Data manifests: which genomes exist, where to get each file, and how to check it.

A manifest is a YAML file (``data_manifests/*.yaml``) with this shape; unknown keys are errors::

    manifest_version: 1
    root: ..                  # optional; local `path:` entries are relative to this folder,
                              # itself relative to the manifest file (default: the manifest's folder)
    genomes:
      - name: lambda          # letters, digits, _ . - (no leading dot); unique
        description: Enterobacteria phage lambda, complete genome
        species: Escherichia virus Lambda
        assembly: NC_001416.1
        licence: GPL-3.0+ (as shipped in Debian bowtie2-examples)
        citation: ...
        source: https://...   # optional landing page
        files:
          - name: lambda_virus.fa        # file name written under DIR/<genome>/
            role: fasta                  # fasta | annotation | variants (VCF) | other
            path: data/demo/lambda_virus.fa       # a local file, tried first ...
            urls: [https://..., ftp://...]        # ... then byte-identical mirrors, in order
            sha256: 0a04...              # 64 hex digits, or null (see `verify`)
            size: 49270                  # bytes, or null
            verify: sha256               # sha256 (default) | required-on-first-fetch
            md5sums_url: https://.../md5sum.txt   # optional: a published md5 list to check against
        holdout: [chrI, "chrX:62,000,001-69,999,930"]    # optional: regions kept out of training
                                                         # for validation (samtools spelling)
        bases: 12071326         # optional: total length of its FASTA records

A file may be one member of a Debian binary package: ``path``/``urls`` then name the ``.deb``,
``deb_member`` the file inside it (``usr/share/doc/...``, as ``dpkg -c`` lists it), and
``deb_sha256``/``deb_size`` (optional) the package's own digest and size, checked before the
member is unpacked; ``sha256`` and ``size`` are those of the member as shipped (a ``.gz``
member stays compressed); ``deb_package``/``deb_version`` name the package (informative).
``md5sums_url`` cannot be combined with ``deb_member``.

``verify: required-on-first-fetch`` is the honest spelling of "nobody has recorded a sha256 for
this file yet": it is allowed only with ``sha256: null``, and :mod:`genomamba.io.fetch` then
records the digest of the first download in a lock file and holds every later fetch to it
(trust on first use; see docs/data.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genomamba.errors import InputDataError
from genomamba.io.regions import parse_region

MANIFEST_VERSION = 1
ROLES = ("fasta", "annotation", "variants", "other")
VERIFY_MODES = ("sha256", "required-on-first-fetch")

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # no leading dot: no "..", no hidden files
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_URL_RE = re.compile(r"^(https?|ftp|file)://\S+$")

_TOP_KEYS = {"manifest_version", "root", "genomes"}
_GENOME_KEYS = {"name", "description", "species", "assembly", "licence", "citation", "source", "files"}
_GENOME_KEYS |= {"holdout", "bases"}
_GENOME_REQUIRED = {"name", "licence", "citation", "files"}
_FILE_KEYS = {"name", "role", "path", "urls", "sha256", "size", "verify", "md5sums_url"}
_FILE_KEYS |= {"deb_package", "deb_version", "deb_member", "deb_sha256", "deb_size"}  # a file of a .deb


@dataclass(frozen=True)
class FileEntry:
    """One file of a genome.

    ``path`` is already resolved to an absolute local path (or None); ``sources`` lists the
    local path first, then the URLs, in the order fetch tries them.
    """

    genome: str
    name: str
    role: str
    sha256: str | None
    size: int | None
    path: Path | None
    urls: tuple[str, ...]
    verify: str
    md5sums_url: str | None
    deb_member: str | None = None  # the file inside the .deb that the sources name
    deb_package: str = ""  # informative: the package name and exact version (dpkg-deb -f X.deb Version)
    deb_version: str = ""
    deb_sha256: str | None = None
    deb_size: int | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        return ((str(self.path),) if self.path is not None else ()) + self.urls


@dataclass(frozen=True)
class GenomeEntry:
    """One genome: provenance fields and its files (FASTA first is not required)."""

    name: str
    licence: str
    citation: str
    files: tuple[FileEntry, ...]
    description: str = ""
    species: str = ""
    assembly: str = ""
    source: str = ""
    holdout: tuple[str, ...] = ()  # regions for validation only (genomamba.io.regions spelling)
    bases: int | None = None  # sequence length of all its FASTA records, when recorded

    def fasta_files(self) -> tuple[FileEntry, ...]:
        return tuple(f for f in self.files if f.role == "fasta")


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest. ``genomes`` keeps the file's order."""

    path: Path
    genomes: dict[str, GenomeEntry]

    def genome(self, name: str) -> GenomeEntry:
        """Return the genome called ``name``; raises InputDataError listing the known names."""
        try:
            return self.genomes[name]
        except KeyError:
            known = ", ".join(self.genomes) or "(none)"
            raise InputDataError(f"{self.path}: no genome named {name!r}; known: {known}") from None


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file.

    Raises:
        InputDataError: the file is missing, is not YAML, or breaks the format above; the
            message names the file and the entry (``genomes[i] (name) files[j]``).
    """
    import yaml  # local import: keeps `import genomamba.io` free of optional work

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputDataError(f"{path}: manifest not found") from None
    except yaml.YAMLError as exc:
        raise InputDataError(f"{path}: not valid YAML: {exc}") from None
    return parse_manifest(data, path)


def parse_manifest(data: Any, path: Path) -> Manifest:
    """Validate already-loaded YAML data; ``path`` names the file in errors and anchors ``root``."""
    where = str(path)
    _check_mapping(data, where, _TOP_KEYS, {"manifest_version", "genomes"})
    if data["manifest_version"] != MANIFEST_VERSION:
        raise InputDataError(
            f"{where}: manifest_version {data['manifest_version']!r} is not supported"
            f" (expected {MANIFEST_VERSION})"
        )
    root = Path(path).parent / _string(data.get("root", "."), f"{where}: root")
    genomes_data = data["genomes"]
    if not isinstance(genomes_data, list) or not genomes_data:
        raise InputDataError(f"{where}: genomes must be a non-empty list")
    genomes: dict[str, GenomeEntry] = {}
    for i, item in enumerate(genomes_data):
        genome = _parse_genome(item, f"{where}: genomes[{i}]", root)
        if genome.name in genomes:
            raise InputDataError(f"{where}: genomes[{i}]: duplicate genome name {genome.name!r}")
        genomes[genome.name] = genome
    return Manifest(path=Path(path), genomes=genomes)


def _parse_genome(item: Any, where: str, root: Path) -> GenomeEntry:
    _check_mapping(item, where, _GENOME_KEYS, _GENOME_REQUIRED)
    name = _name(item["name"], f"{where}: name")
    where = f"{where} ({name})"
    files_data = item["files"]
    if not isinstance(files_data, list) or not files_data:
        raise InputDataError(f"{where}: files must be a non-empty list")
    files = tuple(_parse_file(f, f"{where} files[{j}]", name, root) for j, f in enumerate(files_data))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise InputDataError(f"{where}: file names must be unique, got {names}")
    plain = _GENOME_KEYS - {"name", "files", "holdout", "bases"}
    text = {k: _string(item.get(k, ""), f"{where}: {k}") for k in plain}
    holdout = _regions(item.get("holdout", []), f"{where}: holdout")
    bases = _size(item.get("bases"), f"{where}: bases")
    return GenomeEntry(name=name, files=files, holdout=holdout, bases=bases, **text)


def _parse_file(item: Any, where: str, genome: str, root: Path) -> FileEntry:
    _check_mapping(item, where, _FILE_KEYS, {"name", "role", "sha256"})
    name = _name(item["name"], f"{where}: name")
    role = item["role"]
    if role not in ROLES:
        raise InputDataError(f"{where}: role must be one of {ROLES}, got {role!r}")
    sha256 = _digest(item["sha256"], f"{where}: sha256")
    verify = item.get("verify", "sha256")
    if verify not in VERIFY_MODES:
        raise InputDataError(f"{where}: verify must be one of {VERIFY_MODES}, got {verify!r}")
    if sha256 is None and verify != "required-on-first-fetch":
        raise InputDataError(f"{where}: sha256 is null, so verify must say 'required-on-first-fetch'")
    if sha256 is not None and verify != "sha256":
        raise InputDataError(f"{where}: verify {verify!r} makes no sense with a recorded sha256")
    size = _size(item.get("size"), f"{where}: size")
    urls = item.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) and _URL_RE.match(u) for u in urls):
        raise InputDataError(f"{where}: urls must be a list of http(s)://, ftp:// or file:// URLs")
    local = item.get("path")
    if local is not None:
        local_path = Path(_string(local, f"{where}: path"))
        local = local_path if local_path.is_absolute() else (root / local_path).resolve()
    if local is None and not urls:
        raise InputDataError(f"{where}: needs a path or at least one URL")
    md5sums_url = item.get("md5sums_url")
    if md5sums_url is not None and not (isinstance(md5sums_url, str) and _URL_RE.match(md5sums_url)):
        raise InputDataError(f"{where}: md5sums_url must be a URL, got {md5sums_url!r}")
    deb_member = item.get("deb_member")
    if deb_member is not None:
        deb_member = _string(deb_member, f"{where}: deb_member")
        if not deb_member.strip("./"):
            raise InputDataError(f"{where}: deb_member must name a file inside the package")
        if md5sums_url is not None:
            raise InputDataError(f"{where}: md5sums_url cannot be used with deb_member")
    elif set(item) & {"deb_package", "deb_version", "deb_sha256", "deb_size"}:
        raise InputDataError(f"{where}: deb_package, deb_version, deb_sha256 and deb_size need deb_member")
    return FileEntry(
        genome=genome,
        name=name,
        role=role,
        sha256=sha256,
        size=size,
        path=local,
        urls=tuple(urls),
        verify=verify,
        md5sums_url=md5sums_url,
        deb_member=deb_member,
        deb_package=_string(item.get("deb_package", ""), f"{where}: deb_package"),
        deb_version=_string(str(item.get("deb_version", "")), f"{where}: deb_version"),
        deb_sha256=_digest(item.get("deb_sha256"), f"{where}: deb_sha256"),
        deb_size=_size(item.get("deb_size"), f"{where}: deb_size"),
    )


def _digest(value: Any, where: str) -> str | None:
    if value is not None and not (isinstance(value, str) and _SHA256_RE.match(value)):
        raise InputDataError(f"{where} must be 64 lower-case hex digits or null, got {value!r}")
    return value


def _size(value: Any, where: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InputDataError(f"{where} must be a non-negative integer or null, got {value!r}")
    return value


def _regions(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise InputDataError(f"{where}: expected a list of regions (CHROM or CHROM:START-END)")
    for region in value:
        try:
            parse_region(region)
        except ValueError as exc:
            raise InputDataError(f"{where}: {exc}") from None
    return tuple(value)


def _check_mapping(item: Any, where: str, allowed: set[str], required: set[str]) -> None:
    if not isinstance(item, dict):
        raise InputDataError(f"{where}: expected a mapping, got {type(item).__name__}")
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise InputDataError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(item))
    if missing:
        raise InputDataError(f"{where}: missing key(s) {missing}")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InputDataError(f"{where}: expected text, got {value!r}")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise InputDataError(f"{where}: must match [A-Za-z0-9_][A-Za-z0-9_.-]*, got {value!r}")
    return value
