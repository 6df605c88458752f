"""A VCF written back with scores: the input's records, each with new INFO fields, through pysam.

The output of ``genomamba score-variants ... -o scores.vcf[.gz]`` (or ``.bcf``) is the input VCF
itself (its header lines, contigs, samples and every record, scored or not, in order), with the
scores of each record's alleles added as INFO fields declared in the header (:class:`InfoField`:
``Number=A`` for one value per ALT allele, ``.`` where an allele was not scored; ``Number=1`` for
one value per record). htslib (through pysam) reads and writes it, so the output is what bcftools
and tabix expect; ``.vcf.gz`` is BGZF-compressed, ready for ``tabix -p vcf``.

htslib writes the header before the first record and must find every contig, FILTER, INFO and
FORMAT key of a record declared in it. An input that uses keys its header does not declare (htslib
only warns when reading one) is therefore scanned once first, and the missing declarations are
added: contigs with the genome's lengths, the other keys as htslib itself would read them
(``Number=.,Type=String``; a valueless INFO key as a ``Flag``). Fields of an earlier run with the
same names are replaced, not duplicated.

Records are matched to scores by their index among the VCF's data lines
(:attr:`genomamba.io.vcf.Variant.record`), and each match is checked (CHROM and POS). htslib reads
plain and BGZF VCF (and BCF); an input compressed otherwise (gzip, xz, bzip2), which the scoring
reads directly, is first decompressed into a hidden temporary file beside the output, removed at
the end.

pysam is an optional dependency (``pip install 'genomamba[vcf]'``). No torch here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genomamba.errors import InputDataError
from genomamba.io.atomic import replacing, temporary_sibling
from genomamba.io.compression import open_input, sniff_path
from genomamba.io.directories import made_directories
from genomamba.io.vcf import numbered_lines
from genomamba.optional import optional_module

#: Output names and the pysam write mode of each: text, BGZF-compressed text, BCF.
VCF_MODES = {".vcf": "w", ".vcf.gz": "wz", ".vcf.bgz": "wz", ".bcf": "wb"}
_ADDED = "Not declared in the input's header; added as htslib reads it"


@dataclass(frozen=True)
class InfoField:
    """One INFO field of the output: its ``id``, VCF ``number`` (``A`` or ``1``) and ``type``
    (``Float``, ``Integer``), the ``description`` of its header line, and the ``column`` of the
    score table it is taken from."""

    id: str
    number: str
    type: str
    description: str
    column: str


def vcf_mode(path: str | os.PathLike) -> str | None:
    """The pysam write mode for an output named ``.vcf``, ``.vcf.gz``/``.vcf.bgz`` or ``.bcf``, else None."""
    name = Path(path).name.lower()
    return next((mode for suffix, mode in VCF_MODES.items() if name.endswith(suffix)), None)


def require_pysam():
    """The pysam module, or exit 69 saying how to install it."""
    return optional_module("pysam", "writing a VCF", "vcf", instead="write a .parquet/.tsv/.csv table")


def _undeclared(path: str | os.PathLike, header) -> dict[str, dict[str, bool]]:
    """The contigs, FILTERs, INFO keys (True when valueless: a flag) and FORMAT keys the data lines
    of the VCF at ``path`` use but ``header`` does not declare."""
    used: dict[str, dict[str, bool]] = {"contigs": {}, "filters": {}, "info": {}, "formats": {}}
    for _, text in numbered_lines(path):
        if not text.strip() or text.startswith("#"):
            continue
        fields = text.split("\t")
        used["contigs"].setdefault(fields[0].strip(), False)
        if len(fields) > 6:
            for name in fields[6].split(";"):
                used["filters"].setdefault(name, False)
        if len(fields) > 7:
            for item in fields[7].split(";"):
                key, has_value, _ = item.partition("=")
                used["info"].setdefault(key, not has_value)
        if len(fields) > 8:
            for key in fields[8].split(":"):
                used["formats"].setdefault(key, False)
    declared = {"contigs": header.contigs, "filters": header.filters, "info": header.info,
                "formats": header.formats}
    return {kind: {key: flag for key, flag in keys.items()
                   if key not in (".", "", "PASS") and key not in declared[kind]}
            for kind, keys in used.items()}


def _prepare_header(header, source, fields: Sequence[InfoField], lengths: Mapping[str, int],
                    meta: Sequence[str]) -> None:
    """Declare in ``header`` (in place) what the records need and the score fields (module docstring)."""
    missing = _undeclared(source, header)
    for chrom in missing["contigs"]:
        header.contigs.add(chrom, length=lengths.get(chrom))
    for name in missing["filters"]:
        header.filters.add(name, None, None, _ADDED)
    for key, flag in missing["info"].items():
        header.info.add(key, 0 if flag else ".", "Flag" if flag else "String", _ADDED)
    for key in missing["formats"]:
        header.formats.add(key, 1 if key == "GT" else ".", "String", _ADDED)
    for field in fields:
        if field.id in header.info:
            old = header.info[field.id]
            if (str(old.number), old.type) != (field.number, field.type):
                raise InputDataError(
                    f"{source}: its header declares INFO {field.id} as Number={old.number}, Type={old.type}; "
                    f"genomamba writes Number={field.number}, Type={field.type}")
            continue
        header.info.add(field.id, field.number, field.type, field.description)
    for line in meta:
        header.add_line(line)


@contextlib.contextmanager
def annotated_vcf(
    source: str | os.PathLike,
    out: str | os.PathLike,
    fields: Sequence[InfoField],
    *,
    lengths: Mapping[str, int],
    meta: Sequence[str] = (),
) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Yield ``write(frame)``, which takes score rows (a ``record`` column: the data-line index, an
    ``alt`` column and the fields' columns) in VCF order and writes the records of ``source`` up
    to and including theirs; on leaving the block the remaining records are written and the file
    is renamed onto ``out`` (a failure leaves ``out`` untouched and no temporary behind).

    ``lengths``: the genome's record lengths, for contigs the header lacks; ``meta``: extra header
    lines (``##key=value``), such as how the scores were made.

    Raises:
        ValueError: ``out`` is not named as a VCF or BCF.
        UnavailableError: pysam is not installed.
        InputDataError: a VCF htslib cannot read (naming file and record), a record that is not the
            one its scores were made for, a header that declares a score field differently.
    """
    mode = vcf_mode(out)
    if mode is None:
        raise ValueError(f"{out}: a VCF output ends in {', '.join(VCF_MODES)}")
    pysam = require_pysam()
    with contextlib.ExitStack() as closing:
        # folders made for the output are removed again if it fails, as its temporaries are
        closing.enter_context(made_directories(Path(out).parent))
        readable = source
        if sniff_path(source) not in ("plain", "bgzf"):
            readable = closing.enter_context(_decompressed(source, out))
        # quiet: htslib would say on stderr that a .vcf.gz has no index, which reading needs not
        verbosity = pysam.set_verbosity(0)
        try:
            reader = pysam.VariantFile(str(readable))
        except (OSError, ValueError) as exc:
            raise InputDataError(f"{source}: htslib cannot read it as VCF (eight tab-separated columns "
                                 f"from #CHROM to INFO): {exc}") from None
        finally:
            pysam.set_verbosity(verbosity)
        closing.callback(reader.close)
        _prepare_header(reader.header, source, fields, lengths, meta)
        with replacing(out) as tmp:
            writer = pysam.VariantFile(str(tmp), mode, header=reader.header)
            merger = _Merger(reader, writer, fields, source)
            try:
                yield merger.write
                merger.finish()
            finally:
                writer.close()


@contextlib.contextmanager
def _decompressed(source: str | os.PathLike, out: str | os.PathLike) -> Iterator[Path]:
    """A hidden temporary copy of ``source``, decompressed, beside ``out``; removed on leaving."""
    path = temporary_sibling(out, ".input.vcf")
    try:
        with open(path, "wb") as copy, open_input(source) as stream:
            for block in stream.blocks():
                copy.write(block)
        yield path
    finally:
        path.unlink(missing_ok=True)


class _Merger:
    """Walks the input's records alongside the score rows, writing each record once."""

    def __init__(self, reader, writer, fields: Sequence[InfoField], source):
        self._records = iter(reader)
        self._writer, self._fields, self._source = writer, fields, source
        self._index = -1  # of the last record read
        self._last = None
        self._pending = None  # (record, {ALT: score row}) not written yet

    def _next(self):
        try:
            record = next(self._records)
        except StopIteration:
            return None
        except (OSError, ValueError) as exc:
            after = f"after {self._last.chrom}:{self._last.pos}" if self._last is not None else "first"
            raise InputDataError(f"{self._source}: the record {after} cannot be read by htslib "
                                 f"(a blank or malformed line?): {exc}") from None
        self._index += 1
        self._last = record
        for field in self._fields:  # a value from an earlier run is not this run's score
            if field.id in record.info:
                del record.info[field.id]
        return record

    def _advance_to(self, index: int):
        """Write the records before data line ``index`` unchanged; return record ``index``."""
        while self._index < index - 1:
            record = self._next()
            if record is None:
                break
            self._writer.write(record)
        record = self._next()
        if record is None:
            raise InputDataError(f"{self._source}: htslib read fewer records than the scores were made for")
        return record

    def write(self, frame: pd.DataFrame) -> None:
        # A record is written once its last row is in: when a row of a later record comes, or at
        # the end (its rows may span two frames).
        for row in frame.to_dict("records"):
            index = int(row["record"])
            if self._pending is None or index != self._index:
                self._flush()
                record = self._advance_to(index)
                if (record.chrom, record.pos) != (row["chrom"], int(row["pos"])):
                    raise InputDataError(f"{self._source}: data line {index + 1} reads as {record.chrom}:"
                                         f"{record.pos} in htslib but {row['chrom']}:{row['pos']} here")
                self._pending = (record, {})
            self._pending[1][str(row["alt"]).upper()] = row

    def _flush(self) -> None:
        """Write the pending record with the scores of its rows."""
        if self._pending is None:
            return
        (record, by_alt), self._pending = self._pending, None
        first = next(iter(by_alt.values()))
        alts = [alt.upper() for alt in (record.alts or ())]
        for field in self._fields:
            cast = float if field.type == "Float" else int
            if field.number == "A":  # "." for an allele that was not scored
                record.info[field.id] = tuple(
                    cast(by_alt[alt][field.column]) if alt in by_alt else None for alt in alts)
            else:
                record.info[field.id] = cast(first[field.column])
        self._writer.write(record)

    def finish(self) -> None:
        self._flush()
        while (record := self._next()) is not None:
            self._writer.write(record)
