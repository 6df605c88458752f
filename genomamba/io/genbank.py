"""GenBank flat files as sequence input: recognised by their content, parsed by Biopython.

A file is GenBank when its first non-blank line starts with ``LOCUS`` (after any compression
:mod:`genomamba.io.compression` recognises from the magic bytes: plain, gzip, BGZF, xz, bzip2).
Every command that reads FASTA reads GenBank too: :class:`genomamba.io.fasta.FastaReader` hands
such a file to :func:`genbank_records`, and :class:`genomamba.io.indexed.IndexedFasta` holds its
records in memory (:func:`genbank_sequences`).

What a record becomes:

* its name is ``ACCESSION.VERSION`` (Biopython's ``record.id``), the name NCBI's FASTA of the same
  record carries, so that BED and VCF files made against that FASTA find it; a record without
  ACCESSION/VERSION lines is named after its LOCUS;
* its description is the DEFINITION line;
* its sequence is the ORIGIN block, upper-cased: GenBank writes every base in lower case by
  convention, so case carries no soft-masking here (the soft-mask track is all False). IUPAC codes
  and invalid characters then meet the alphabet's policy like FASTA bases do;
* a record without sequence (a CONTIG or WGS master record, or an empty ORIGIN) has none, and is
  skipped with a warning as an empty FASTA record is.

Only the sequence is read: the feature table is skipped (no command uses it, and skipping it
makes parsing several times faster). Errors are :class:`~genomamba.errors.InputDataError` naming
the file, the record and the line: anything Biopython rejects, a file that ends inside a record,
a sequence whose length is not the one the LOCUS line gives, a protein record, duplicate names.

No torch; Biopython is imported when a GenBank file is met.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from genomamba.errors import GenomambaError, InputDataError
from genomamba.io.compression import open_input
from genomamba.io.records import invalid_character_message

GENBANK_START = b"LOCUS"
#: Biopython only warns about these; here they mean a truncated or inconsistent file.
_FATAL_WARNINGS = ("Premature end of file", "Expected sequence length")
_log = logging.getLogger("genomamba.io")


def starts_like_genbank(head: bytes) -> bool:
    """Whether the first non-blank line of ``head`` (the first decompressed bytes of a file,
    a byte-order mark allowed) starts with ``LOCUS``."""
    for line in head.removeprefix(b"\xef\xbb\xbf").splitlines():
        if line.strip():
            return line.startswith(GENBANK_START)
    return False


def is_genbank(path: str | os.PathLike, head_size: int = 1 << 12) -> bool:
    """:func:`starts_like_genbank` of the file at ``path`` (decompressed as needed).

    Raises:
        InputDataError: the file cannot be read.
    """
    head = b""
    with open_input(path) as stream:
        for block in stream.blocks():
            head += block
            if len(head) >= head_size:
                break
    return starts_like_genbank(head)


@dataclass(frozen=True)
class GenBankRecord:
    """One record: ``sequence`` is upper-case ASCII bytes, or None when the record has none.
    ``locus_line``/``origin_line``: 1-based lines of its LOCUS and ORIGIN lines (for messages)."""

    name: str
    description: str
    locus_line: int
    origin_line: int | None
    sequence: bytes | None

    def place(self, position: int, byte: int) -> str:
        """Where the invalid ``byte`` at 0-based sequence ``position`` is, for a message: Biopython
        keeps no line of the ORIGIN block, so the 1-based sequence position and the block's line."""
        origin = f" (ORIGIN at line {self.origin_line})" if self.origin_line else ""
        return f"sequence position {position + 1}{origin}: {invalid_character_message(byte)}"


class _BlockReader(io.RawIOBase):
    """A readable binary stream over an iterator of byte blocks (no copy of a block per read)."""

    def __init__(self, blocks: Iterable[bytes]):
        self._blocks = iter(blocks)
        self._view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._view:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._view = memoryview(block)
        n = min(len(buffer), len(self._view))
        buffer[:n] = self._view[:n]
        self._view = self._view[n:]
        return n


class _CountingLines:
    """The ``readline`` Biopython's scanner calls, counting lines and noting where each LOCUS and
    ORIGIN line is, so that errors and records can name their line."""

    def __init__(self, blocks: Iterable[bytes], first_line: int):
        # surrogateescape: a stray non-UTF-8 byte survives to the point where it is reported
        self._text = io.TextIOWrapper(io.BufferedReader(_BlockReader(blocks), 1 << 16), encoding="utf-8",
                                      errors="surrogateescape", newline=None)
        self.line = first_line - 1  # lines read so far
        self.locus_line = first_line
        self.locus_name: str | None = None
        self.origin_line: int | None = None

    def readline(self) -> str:
        text = self._text.readline()
        if text:
            self.line += 1
            if text.startswith("LOCUS"):
                parts = text.split()
                self.locus_line, self.origin_line = self.line, None
                self.locus_name = parts[1] if len(parts) > 1 else None
            elif text.startswith("ORIGIN"):
                self.origin_line = self.line
        return text

    def record(self) -> str:
        """``record 'NAME' (LOCUS line L)``: the record being read, named as its LOCUS line names it."""
        name = f"record '{self.locus_name}'" if self.locus_name else "record"
        return f"{name} (LOCUS line {self.locus_line})"

    def where(self) -> str:
        """:meth:`record` and the last line read (where Biopython stopped)."""
        return f"{self.record()}, line {self.line}"


def _one_line(exc: BaseException) -> str:
    """Biopython's message, which may quote the offending line on a line of its own, as one line."""
    return " ".join(part.strip() for part in str(exc).splitlines() if part.strip()) or type(exc).__name__


def genbank_records(
    blocks: Iterable[bytes],
    source: str,
    *,
    first_line: int = 1,
    warn: Callable[[str], None] | None = None,
) -> Iterator[GenBankRecord]:
    """The records of GenBank text given as decompressed byte ``blocks``, in file order.

    ``source`` names the file in messages; ``first_line`` is the line number of the first byte
    of ``blocks`` (blank lines before it may have been read already); ``warn`` receives Biopython's
    other parser warnings (default: the ``genomamba.io`` logger).

    Raises:
        InputDataError: see the module docstring; the message names file, record and line.
    """
    from Bio import BiopythonParserWarning
    from Bio.GenBank.Scanner import GenBankScanner

    warn = warn or _log.warning
    lines = _CountingLines(blocks, first_line)
    # do_features=False: only the sequence is used, and skipping the feature table is faster
    parser = GenBankScanner(debug=0).parse_records(lines, do_features=False)
    seen: dict[str, int] = {}
    while True:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BiopythonParserWarning)
            try:
                record = next(parser)
            except StopIteration:
                if not seen:  # Biopython skips lines that are not a LOCUS line as it looks for one
                    raise InputDataError(
                        f"{source}: line {first_line} starts with LOCUS, but no GenBank record was found (a "
                        "LOCUS line is 'LOCUS', spaces to column 12, then the name)") from None
                return
            except GenomambaError:  # the input stream's own errors (a truncated gzip file, say)
                raise
            except Exception as exc:  # noqa: BLE001 - Biopython reports bad input as ValueError,
                # AssertionError, IndexError... depending on where it trips; each one is about the file
                message = f"{source}: {lines.where()}: not valid GenBank: {_one_line(exc)}"
                raise InputDataError(message) from None
        for message in (str(w.message) for w in caught if issubclass(w.category, BiopythonParserWarning)):
            if message.startswith(_FATAL_WARNINGS):
                raise InputDataError(f"{source}: {lines.where()}: not valid GenBank: {_one_line(message)}")
            # reported once the record is read: its LOCUS line, not the line Biopython was on
            warn(f"{source}: {lines.record()}: {_one_line(message)}")
        yield _record(record, lines, source, seen)


def _record(record, lines: _CountingLines, source: str, seen: dict[str, int]) -> GenBankRecord:
    """A parsed Biopython record as a :class:`GenBankRecord`, checked."""
    name, locus_line = record.id, lines.locus_line
    if name in seen:
        raise InputDataError(
            f"{source}: duplicate record name '{name}' (LOCUS lines {seen[name]} and {locus_line}); "
            "record names must be unique"
        )
    seen[name] = locus_line
    if record.annotations.get("molecule_type") == "protein":
        raise InputDataError(f"{source}: record '{name}' (LOCUS line {locus_line}) is a protein sequence; "
                             "genomamba reads DNA")
    sequence = bytes(record.seq) if record.seq.defined and len(record.seq) else None
    description = record.description if record.description != "." else ""
    return GenBankRecord(name, description, locus_line, lines.origin_line, sequence)


def genbank_sequences(path: str | os.PathLike, warn: Callable[[str], None] | None = None) -> dict[str, bytes]:
    """``{record name: sequence}`` of every record of the GenBank file at ``path`` that has one
    (upper-case ASCII bytes); records without sequence are left out with a warning.

    Raises:
        InputDataError: what :func:`genbank_records` rejects, or no record with sequence.
    """
    warn = warn or _log.warning
    sequences: dict[str, bytes] = {}
    with open_input(path) as stream:
        for record in genbank_records(stream.blocks(), stream.name, warn=warn):
            if record.sequence is None:
                warn(f"{stream.name}: record '{record.name}' (LOCUS line {record.locus_line}) has no "
                     "sequence; skipped")
                continue
            sequences[record.name] = record.sequence
    if not sequences:
        raise InputDataError(f"{path}: no GenBank record has any sequence")
    return sequences
