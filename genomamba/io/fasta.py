"""Streaming FASTA reader: blocks of text in, token-id chunks out, every bad input named.

GenBank files are read here too: a file whose first non-blank line starts with ``LOCUS`` is
handed to :mod:`genomamba.io.genbank` (Biopython) and yields the same records, chunks and stats.

The reader never builds a record as one Python string. It takes blocks of decompressed text
(:mod:`genomamba.io.compression`, a few MiB each), finds headers with ``bytes.find``, strips
line breaks with ``bytes.replace`` and encodes each block with :func:`genomamba.alphabet.encode`
(a 256-entry lookup): a few vectorised passes per block and no Python loop per line or base.

Usage::

    with FastaReader("genome.fa.gz") as reader:
        for record in reader.records():
            for chunk in record.chunks():      # Chunk(start, ids, softmask)
                ...
            print(record.stats.length, record.stats.n_fraction)

or :func:`read_fasta` for whole records of small files.

What is accepted and what is an error (docs/input-formats.md lists the messages):

* accepted: LF or CRLF line endings (one style per record, header line included), a missing
  final newline, blank lines, lower case (same tokens, soft-mask track), IUPAC codes (N, counted),
  a UTF-8 byte-order mark before the first ``>`` (stripped, with a warning), all-N records;
* skipped with a warning (an error with ``strict=True``): records without sequence;
* errors (:class:`genomamba.errors.InputDataError`, naming file, record, line and column):
  empty input, text before the first ``>``, FASTQ, ``>`` without a name, duplicate names,
  bare CR or mixed line endings inside a record, any byte outside the alphabet (space, tab,
  digit, ``*``, ``-``, ``.``, other letters, ``U`` without ``rna=True``) unless ``lenient=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from itertools import chain

import numpy as np

from genomamba.alphabet import InvalidCharacterError, encode
from genomamba.errors import InputDataError
from genomamba.io.compression import BLOCK_SIZE, InputStream
from genomamba.io.genbank import GENBANK_START, genbank_records
from genomamba.io.records import (
    Chunk,
    FastaRecord,
    RecordStats,
    invalid_character_message,
    line_and_column,
    sequence_position,
)

UTF8_BOM = b"\xef\xbb\xbf"
#: A header longer than this is not FASTA (a binary file, or a genome on one line after '>').
MAX_HEADER_BYTES = 1 << 20

_START, _HEADER, _SEQUENCE = range(3)
_EV_HEADER, _EV_CHUNK, _EV_END = range(3)

_log = logging.getLogger("genomamba.io")


class RecordStream:
    """One record while it streams: ``name``, ``description``, ``header_line``, ``stats``.

    Iterate :meth:`chunks` once; ``stats`` is complete when it is exhausted. Moving on to the
    next record of :meth:`FastaReader.records` reads past whatever chunks were not consumed.
    """

    def __init__(self, stats: RecordStats, first: Chunk, events: Iterator[tuple]):
        self.stats = stats
        self.name = stats.name
        self.description = stats.description
        self.header_line = stats.header_line
        self._first: Chunk | None = first
        self._events = events
        self._done = False

    def chunks(self) -> Iterator[Chunk]:
        """The record's sequence, in order, as :class:`Chunk` (start, ids, softmask)."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while not self._done:
            event = next(self._events)
            if event[0] == _EV_END:
                self._done = True
                return
            yield event[1]

    def _drain(self) -> None:
        for _ in self.chunks():
            pass


class FastaReader:
    """Read a FASTA or GenBank file (plain, gzip, BGZF, xz, bzip2; ``-`` for stdin) as a stream of records.

    Args:
        path: file path or ``-``.
        rna: read U as T.
        lenient: read invalid characters as N (counted in the record's stats).
        strict: records without sequence are errors instead of warnings.
        softmask: yield the lower-case track with each chunk.
        report_invalid: do not raise on invalid characters: count them in ``stats.invalid_count``
            and remember the first one's place (``genomamba validate`` uses this).
        warn: called with each warning message (default: the ``genomamba.io`` logger).
        block_size: largest decompressed block handled at once (bytes).

    Attributes (after reading): ``sha256`` of the raw input, ``compression``,
    ``records_read``, ``skipped`` (stats of records without sequence).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        rna: bool = False,
        lenient: bool = False,
        strict: bool = False,
        softmask: bool = True,
        report_invalid: bool = False,
        warn: Callable[[str], None] | None = None,
        block_size: int = BLOCK_SIZE,
    ):
        self.rna, self.lenient, self.strict = rna, lenient, strict
        self.softmask, self.report_invalid = softmask, report_invalid
        self._warn = warn or _log.warning
        self.input = InputStream(path, block_size=block_size)
        self.name = self.input.name
        self.compression = self.input.compression
        self.records_read = 0
        self.skipped: list[RecordStats] = []
        self._names: dict[str, int] = {}
        self._line = 1  # line of the next unread byte (1-based)
        self._col = 0  # bytes of that line already read
        self._crlf = False  # line-ending style of the current record (from its header line)
        self._pending_cr: tuple[int, int] | None = None  # CR ending the last block, awaiting LF
        self._current: RecordStats | None = None

    def __enter__(self) -> FastaReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.input.close()

    @property
    def sha256(self) -> str | None:
        return self.input.sha256

    def error(self, message: str) -> InputDataError:
        return InputDataError(f"{self.name}: {message}")

    def _where(self, line: int, column: int | None = None) -> str:
        record = f"record '{self._current.name}', " if self._current is not None else ""
        return f"{record}line {line}" + (f", column {column}" if column is not None else "")

    # -- records -------------------------------------------------------------------------------

    def records(self) -> Iterator[RecordStream]:
        """Yield each record with sequence; see :class:`RecordStream`.

        Raises:
            InputDataError: for any of the errors listed in the module docstring.
        """
        events = self._events()
        for event in events:
            stats = event[1]
            following = next(events)
            if following[0] == _EV_END:
                where = f"record '{stats.name}' (line {stats.header_line}) has no sequence"
                if self.strict:
                    raise self.error(f"{where} (--strict)")
                self._warn(f"{self.name}: {where}; skipped")
                self.skipped.append(stats)
                continue
            self.records_read += 1
            stream = RecordStream(stats, following[1], events)
            yield stream
            stream._drain()
        if self.records_read == 0:
            skipped = f" ({len(self.skipped)} empty record(s) skipped)" if self.skipped else ""
            raise self.error(f"no record has any sequence{skipped}")

    def _events(self) -> Iterator[tuple]:
        state = _START
        header_parts: list[bytes] = []
        header_size = 0
        at_line_start = True
        held = b""  # bytes kept back in the start state (a BOM may be split across reads)
        seen_bytes = False
        first_block = True
        blocks = self.input.blocks()
        for block in blocks:
            if not block:
                continue
            seen_bytes = True
            pos = 0
            if state == _START:
                block = held + block
                held = b""
                if first_block:
                    if len(block) < len(UTF8_BOM) and UTF8_BOM.startswith(block):
                        held = block
                        continue
                    first_block = False
                    if block.startswith(UTF8_BOM):
                        self._warn(f"{self.name}: UTF-8 byte-order mark before the first '>' removed")
                        block = block[len(UTF8_BOM) :]
                pos = self._skip_blank_lines(block)
                if pos < 0:  # a lone CR at the end: wait for the next block to see if LF follows
                    held = block[-1:]
                    continue
                if pos == len(block):
                    continue
                if block[pos] not in b">@" and block.find(b"\n", pos) < 0 and len(block) - pos < 60:
                    held = block[pos:]  # read on, to show the whole offending line in the message
                    continue
                if block.startswith(GENBANK_START, pos):
                    yield from self._genbank_events(chain([block[pos:]], blocks))
                    return
                self._check_first_line(block, pos)
                state, pos, self._col = _HEADER, pos + 1, 1
            n = len(block)
            while pos < n:
                if state == _HEADER:
                    end = block.find(b"\n", pos)
                    if end < 0:
                        header_parts.append(block[pos:])
                        header_size += n - pos
                        if header_size > MAX_HEADER_BYTES:
                            raise self.error(f"line {self._line}: header over 1 MiB long; is this FASTA?")
                        break
                    header_parts.append(block[pos:end])
                    pos = end + 1
                    yield _EV_HEADER, self._header(b"".join(header_parts))
                    header_parts, header_size = [], 0
                    self._line, self._col = self._line + 1, 0
                    state, at_line_start = _SEQUENCE, True
                elif at_line_start and block[pos] == 62:  # '>' at a line start: next record
                    yield self._end_record()
                    state, pos, self._col = _HEADER, pos + 1, 1
                else:
                    end = block.find(b"\n>", pos)
                    end = n if end < 0 else end + 1
                    region = block if (pos == 0 and end == n) else block[pos:end]
                    pos = end
                    at_line_start = region.endswith(b"\n")
                    chunk = self._sequence(region)
                    if chunk is not None:
                        yield _EV_CHUNK, chunk
        if state == _START:
            if held == b"\r":
                raise self.error(f"line {self._line}: bare carriage return (CR) line ending")
            if held.startswith(GENBANK_START):
                yield from self._genbank_events([held])
                return
            if held:
                self._check_first_line(held, 0)
            if not seen_bytes:
                raise self.error("empty file: no FASTA records")
            raise self.error("no FASTA records (the file holds only blank lines)")
        if state == _HEADER:  # last line is a header without a newline
            yield _EV_HEADER, self._header(b"".join(header_parts))
        yield self._end_record()

    def _skip_blank_lines(self, block: bytes) -> int:
        """Index of the first byte that is not part of a blank line; -1 if a CR ends the block."""
        pos, n = 0, len(block)
        while pos < n:
            if block[pos] == 10:
                pos += 1
            elif block[pos] == 13:
                if pos + 1 == n:
                    return -1
                if block[pos + 1] != 10:
                    raise self.error(f"line {self._line}: bare carriage return (CR) line ending")
                pos += 2
            else:
                break
            self._line += 1
        return pos

    def _check_first_line(self, block: bytes, pos: int) -> None:
        first = block[pos]
        if first == 62:  # '>'
            return
        line_end = block.find(b"\n", pos)
        text = block[pos : line_end if line_end >= 0 else pos + 60][:60]
        shown = text.decode("utf-8", "replace").rstrip("\r")
        if first == 64:  # '@'
            raise self.error(
                f"line {self._line}: this looks like FASTQ (a line starts with '@', FASTA headers start "
                "with '>'); convert it to FASTA first, e.g. `seqtk seq -A reads.fq > reads.fa`"
            )
        raise self.error(
            f"line {self._line}, column 1: text before the first '>' header ({shown!r}); "
            "a FASTA file must start with a '>' header line"
        )

    def _header(self, raw: bytes) -> RecordStats:
        line = self._line
        self._current = None
        self._crlf = raw.endswith(b"\r")
        if self._crlf:
            raw = raw[:-1]
        if b"\r" in raw:
            raise self.error(f"line {line}: bare carriage return (CR) inside the header line")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"line {line}, column {exc.start + 2}: header is not valid UTF-8 text") from exc
        if not text or text[0].isspace():
            raise self.error(f"line {line}: header line '>' has no record name right after the '>'")
        parts = text.split(maxsplit=1)
        name, description = parts[0], (parts[1] if len(parts) > 1 else "")
        if name in self._names:
            raise self.error(
                f"duplicate record name '{name}' (lines {self._names[name]} and {line}); record names "
                "must be unique"
            )
        self._names[name] = line
        self._current = RecordStats(name=name, description=description, header_line=line)
        return self._current

    def _end_record(self) -> tuple:
        if self._pending_cr is not None:
            line, column = self._pending_cr
            raise self.error(f"{self._where(line, column)}: bare carriage return (CR) line ending")
        return (_EV_END,)

    def _genbank_events(self, blocks: Iterable[bytes]) -> Iterator[tuple]:
        """The events of :meth:`_events` for GenBank text (``blocks`` start at its LOCUS line)."""
        for record in genbank_records(blocks, self.name, first_line=self._line, warn=self._warn):
            self._current = RecordStats(name=record.name, description=record.description,
                                        header_line=record.locus_line)
            yield _EV_HEADER, self._current
            sequence = record.sequence or b""
            for start in range(0, len(sequence), self.input.block_size):
                piece = sequence[start : start + self.input.block_size]
                locate = lambda exc, s=start, r=record: r.place(s + exc.offset, exc.byte)  # noqa: E731
                yield _EV_CHUNK, self._encode(piece, locate)
            yield (_EV_END,)

    # -- sequence ------------------------------------------------------------------------------

    def _sequence(self, region: bytes) -> Chunk | None:
        line0, col0 = self._line, self._col + 1
        n_lf = region.count(b"\n")
        if self._crlf:
            sequence = self._strip_crlf(region, n_lf, line0, col0)
        else:
            cr = region.find(b"\r")
            if cr >= 0:
                line, column = line_and_column(region, line0, col0, cr)
                raise self.error(
                    f"{self._where(line, column)}: carriage return (CR) in a record whose header line ends "
                    "with LF (bare CR or mixed line endings)"
                )
            sequence = region.replace(b"\n", b"") if n_lf else region
        if n_lf:
            self._line += n_lf
            self._col = len(region) - region.rfind(b"\n") - 1
        else:
            self._col += len(region)
        if not sequence:
            return None
        return self._encode(sequence, lambda exc: self._locate(exc, region, line0, col0))

    def _strip_crlf(self, region: bytes, n_lf: int, line0: int, col0: int) -> bytes:
        lead = 0
        if self._pending_cr is not None:
            if not region.startswith(b"\n"):
                line, column = self._pending_cr
                raise self.error(f"{self._where(line, column)}: bare carriage return (CR) line ending")
            self._pending_cr, lead = None, 1
        trailing = int(region.endswith(b"\r"))
        n_cr = region.count(b"\r")
        n_crlf = region.count(b"\r\n")
        raw = np.frombuffer(region, dtype=np.uint8)
        if n_lf - lead != n_crlf:
            lf = np.flatnonzero(raw == 10)
            lf = lf[lf >= lead]
            bad = int(lf[(lf == 0) | (raw[np.maximum(lf - 1, 0)] != 13)][0])
            line, column = line_and_column(region, line0, col0, bad)
            raise self.error(
                f"{self._where(line, column)}: LF line ending in a record whose header line ends with CRLF "
                "(mixed line endings)"
            )
        if n_cr - trailing != n_crlf:
            cr = np.flatnonzero(raw[: len(raw) - 1] == 13)
            bad = int(cr[raw[cr + 1] != 10][0])
            line, column = line_and_column(region, line0, col0, bad)
            raise self.error(f"{self._where(line, column)}: bare carriage return (CR) line ending")
        if trailing:
            self._pending_cr = line_and_column(region, line0, col0, len(region) - 1)
        return region[lead : len(region) - trailing].replace(b"\r\n", b"")

    def _encode(self, sequence: bytes, locate: Callable[[InvalidCharacterError], str]) -> Chunk:
        """Encode ``sequence``; ``locate(exc)`` says where an invalid character is in the file."""
        record = self._current
        try:
            lenient = self.lenient or self.report_invalid
            ids, mask, stats = encode(sequence, rna=self.rna, lenient=lenient, want_softmask=self.softmask)
        except InvalidCharacterError as exc:
            raise self.error(f"record '{record.name}', {locate(exc)}") from None
        if self.report_invalid and not self.lenient and stats.lenient_replacements:
            # They were read as N only to keep going: report them as invalid, not as lenient.
            record.invalid_count += stats.lenient_replacements
            stats.lenient_replacements = 0
            if record.first_invalid is None:
                try:
                    encode(sequence, rna=self.rna)
                except InvalidCharacterError as exc:
                    record.first_invalid = locate(exc)
        start = record.length
        record.add_ids(ids, stats)
        return Chunk(start, ids, mask)

    @staticmethod
    def _locate(exc: InvalidCharacterError, region: bytes, line0: int, col0: int) -> str:
        """``line L, column C: invalid character ...`` for an encode error inside ``region``."""
        pos = sequence_position(region, exc.offset)
        line, column = line_and_column(region, line0, col0, pos)
        return f"line {line}, column {column}: {invalid_character_message(exc.byte)}"


def read_fasta(path: str | os.PathLike, **options) -> Iterator[FastaRecord]:
    """Whole records, each concatenated into one uint8 array; for small files and tests.

    ``options`` are those of :class:`FastaReader`. Raises InputDataError like it.
    """
    with FastaReader(path, **options) as reader:
        for record in reader.records():
            parts = list(record.chunks())
            ids = np.concatenate([c.ids for c in parts])
            masks = [c.softmask for c in parts]
            softmask = np.concatenate(masks) if masks and masks[0] is not None else None
            yield FastaRecord(record.name, record.description, ids, softmask, record.stats)
