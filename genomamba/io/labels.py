"""Labelled sequences for fine-tuning and evaluation: reading CSV/TSV, Parquet, BED + genome, FASTA per class.

numpy and pyarrow only (no torch). Four input formats, chosen by the file name (after a ``.gz``/
``.bgz``/``.xz``/``.bz2`` suffix; the compression itself is recognised from the bytes):

* **CSV / TSV** (``.csv``; ``.tsv``, ``.tab``, ``.txt``): a header row naming the columns
  ``sequence`` and ``label`` (required) and optionally ``id``, ``group``, ``split``; other
  columns are ignored. Multi-label rows list their labels separated by ``;``.
* **Parquet** (``.parquet``, ``.pq``; not compressed again): the same columns by name. ``sequence``
  holds strings; ``label`` strings or numbers (read as they print: ``1``, ``0.5``), or a list of
  labels for a multi-label row; errors name the row (1-based) instead of a line.
* **BED** (``.bed``): ``chrom start end`` (0-based, half-open) plus the label, with sequences
  fetched from ``genome`` (a FASTA, through :mod:`genomamba.io.indexed`). Without
  a header the 4th column is the label (BED4). With a header line (``#chrom start end name
  label ...`` or the same without ``#``) the columns are found by name: ``label`` is required,
  ``name`` (the id), ``strand`` (``-`` gives the reverse complement), ``group`` and ``split`` are
  optional. ``track``/``browser`` lines and later ``#`` lines are skipped. ``group`` defaults
  to the chromosome, so a grouped split keeps each chromosome on one side.
* **FASTA per class**: ``LABEL=FILE`` (FASTA or GenBank, any compression); every record of FILE
  is one example with label LABEL, its id and group the record name.

Sequences follow the alphabet's policy (:func:`genomamba.alphabet.encode`): any case, IUPAC codes
read as N, anything else an error unless ``lenient``. ``split`` values are ``train``, ``val``
(or ``valid``, ``validation``) and ``test``; empty means unassigned.

Which task the labels pose and their numeric targets: :mod:`genomamba.tasks.targets`.

Every error is an :class:`~genomamba.errors.InputDataError` (exit 65) whose message starts
with the file and names the line (and column, or record) and what is wrong.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genomamba.alphabet import InvalidCharacterError, encode
from genomamba.errors import InputDataError
from genomamba.io.bed import interval_ids, intervals, parse_bed
from genomamba.io.compression import read_text
from genomamba.io.records import ReadAsNTally, invalid_character_message

# "valid" is how BEND's BED files name the validation split
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_COMPRESSION_SUFFIXES = (".gz", ".bgz", ".xz", ".bz2")
_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".bed": "bed", ".parquet": "parquet",
            ".pq": "parquet"}
_COLUMNS = ("sequence", "label", "id", "group", "split")


@dataclass
class LabelledData:
    """Examples in input order. ``sequences``: uint8 token-id arrays (alphabet ids, length >= 1);
    ``labels``: the label as written (stripped); ``splits``: ``train``/``val``/``test`` or None;
    ``sources``: where each example came from (``FILE: line N``), for error messages."""

    ids: list[str] = field(default_factory=list)
    sequences: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # the input files, for provenance

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, id_, sequence, label, group, split, source) -> None:
        for name, value in zip(
            ("ids", "sequences", "labels", "groups", "splits", "sources"),
            (id_, sequence, label, group, split, source),
            strict=True,
        ):
            getattr(self, name).append(value)

    def subset(self, index) -> LabelledData:
        """The examples at ``index`` (a sequence of ints or a boolean mask), in that order."""
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=int)
        pick = lambda values: [values[i] for i in index]  # noqa: E731
        return LabelledData(
            pick(self.ids),
            pick(self.sequences),
            pick(self.labels),
            pick(self.groups),
            pick(self.splits),
            pick(self.sources),
            list(self.files),
        )


# -- reading --------------------------------------------------------------------------------------
def parse_input(value: str) -> tuple[str | None, str]:
    """``"LABEL=FILE"`` -> ``(LABEL, FILE)``; a plain path (even one holding ``=``) -> ``(None, path)``."""
    if "=" in value and not os.path.exists(value):
        label, path = value.split("=", 1)
        if label.strip() and path:
            return label.strip(), path
    return None, value


def read_labelled(
    inputs: str | list[str],
    *,
    genome: str | os.PathLike | None = None,
    lenient: bool = False,
    rna: bool = False,
) -> LabelledData:
    """Read one table/BED file, or one or more ``LABEL=FILE`` FASTA classes (not both).

    Raises:
        InputDataError: any problem with the data (see the module docstring).
        ValueError: a mix of ``LABEL=FILE`` and plain files, several plain files, or BED without
            ``genome`` (usage errors).
    """
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    parsed = [parse_input(v) for v in inputs]
    classes = [(label, path) for label, path in parsed if label is not None]
    if classes:
        if len(classes) != len(parsed):
            raise ValueError("give either one labelled file or LABEL=FASTA entries, not both")
        return read_fasta_classes(classes, lenient=lenient, rna=rna)
    if len(parsed) != 1:
        raise ValueError(f"give one labelled file, got {len(parsed)}: {', '.join(inputs)}")
    path = parsed[0][1]
    kind = input_format(path)
    if kind == "bed":
        if genome is None:
            raise ValueError(f"{path}: BED input needs --genome FASTA to fetch the sequences from")
        return read_bed(path, genome, lenient=lenient, rna=rna)
    if kind == "parquet":
        return read_parquet(path, lenient=lenient, rna=rna)
    return read_table(path, delimiter="," if kind == "csv" else "\t", lenient=lenient, rna=rna)


def input_format(path: str | os.PathLike) -> str:
    """``csv``, ``tsv``, ``parquet`` or ``bed`` from the file name. Raises InputDataError for other names."""
    name = Path(path).name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    kind = _FORMATS.get(Path(name).suffix)
    if kind is None:
        raise InputDataError(
            f"{path}: cannot tell the format from the file name; name it .csv, .tsv, .parquet or .bed "
            "(or give FASTA files as LABEL=FILE)"
        )
    return kind


def encode_text(
    text: str, where: str, *, lenient: bool = False, rna: bool = False, tally: ReadAsNTally | None = None
) -> np.ndarray:
    """Token ids of one sequence given as text (a table cell, a string from Python), surrounding
    whitespace ignored, counted in ``tally`` when given; ``where`` names it in errors (file, line
    and column; or the sequence's index).

    Raises:
        InputDataError: an empty sequence, a character outside the alphabet (its position).
    """
    sequence = text.strip()
    if not sequence:
        raise InputDataError(f"{where}: empty sequence")
    try:
        raw = sequence.encode("ascii")
    except UnicodeEncodeError as exc:
        raise InputDataError(
            f"{where}, position {exc.start + 1}: invalid character {sequence[exc.start]!r} (not ASCII)"
        ) from None
    try:
        ids, _, stats = encode(raw, rna=rna, lenient=lenient)
    except InvalidCharacterError as exc:
        message = invalid_character_message(exc.byte)
        raise InputDataError(f"{where}, position {exc.offset + 1}: {message}") from None
    if tally is not None:
        tally.add(stats)
    return ids


def _split_value(value: str, where: str) -> str | None:
    value = value.strip().lower()
    if not value:
        return None
    if value not in SPLITS:
        raise InputDataError(f"{where}: split {value!r} is not one of train, val, test (or empty)")
    return SPLITS[value]


def read_table(
    path: str | os.PathLike, *, delimiter: str = ",", lenient: bool = False, rna: bool = False
) -> LabelledData:
    """Read a CSV (``delimiter=","``) or TSV (``"\\t"``) file; see the module docstring."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
    except csv.Error as exc:
        raise InputDataError(f"{path}: line {reader.line_num}: {exc}") from None
    if header is None:
        raise InputDataError(f"{path}: empty file: expected a header row with the columns sequence,label")
    header_line = reader.line_num
    names = [cell.strip().lower() for cell in header]
    duplicated = sorted({n for n in names if n and names.count(n) > 1})
    if duplicated:
        raise InputDataError(f"{path}: line {header_line}: duplicate column(s) {', '.join(duplicated)}")
    missing = [c for c in ("sequence", "label") if c not in names]
    if missing:
        sep = "tab" if delimiter == "\t" else repr(delimiter)
        raise InputDataError(
            f"{path}: line {header_line}: missing column(s) {', '.join(map(repr, missing))} in the header "
            f"(found: {', '.join(map(repr, names))}; columns separated by {sep})"
        )
    col = {name: names.index(name) for name in _COLUMNS if name in names}
    data = LabelledData(files=[str(path)])
    tally = ReadAsNTally()
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                raise InputDataError(
                    f"{path}: line {line}: {len(row)} field(s), but the header (line {header_line}) "
                    f"has {len(names)}"
                )
            where = f"{path}: line {line}"
            ids = encode_text(row[col["sequence"]], f"{where}, column 'sequence'", lenient=lenient, rna=rna,
                              tally=tally)
            id_ = row[col["id"]].strip() if "id" in col else ""
            id_ = id_ or f"{Path(path).name}:{line}"
            group = row[col["group"]].strip() if "group" in col else ""
            split = _split_value(row[col["split"]], f"{where}, column 'split'") if "split" in col else None
            data.add(id_, ids, row[col["label"]].strip(), group or id_, split, where)
    except csv.Error as exc:
        raise InputDataError(f"{path}: line {reader.line_num}: {exc}") from None
    if not data.ids:
        raise InputDataError(f"{path}: no data rows after the header (line {header_line})")
    tally.warn(str(path), "sequences")
    return data


def _cell(value, where: str) -> str:
    """A Parquet cell as the text a CSV would hold: null -> ``""``, a list -> ``a;b``, a number as printed."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(_cell(v, where) for v in value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InputDataError(f"{where}: not UTF-8 text") from None
    return str(value)


def read_parquet(path: str | os.PathLike, *, lenient: bool = False, rna: bool = False) -> LabelledData:
    """Read a Parquet file with the columns of a CSV (module docstring); rows are named ``FILE: row N``.

    Raises:
        InputDataError: not a Parquet file (or compressed again), a missing or duplicate column,
            no rows, a null or empty sequence, what :func:`encode_text` rejects.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genomamba.io.compression import sniff_path

    compression = sniff_path(path)
    if compression != "plain":
        raise InputDataError(f"{path}: {compression}-compressed; Parquet compresses its columns itself, "
                             "decompress the file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputDataError(f"{path}: not a readable Parquet file: {exc}") from None
    names = [name.strip().lower() for name in table.column_names]
    duplicated = sorted({n for n in names if n and names.count(n) > 1})
    if duplicated:
        raise InputDataError(f"{path}: duplicate column(s) {', '.join(duplicated)}")
    missing = [c for c in ("sequence", "label") if c not in names]
    if missing:
        raise InputDataError(f"{path}: missing column(s) {', '.join(map(repr, missing))} (found: "
                             f"{', '.join(map(repr, table.column_names))})")
    if table.num_rows == 0:
        raise InputDataError(f"{path}: no rows")
    columns = {name: table.column(names.index(name)).to_pylist() for name in _COLUMNS if name in names}
    data = LabelledData(files=[str(path)])
    tally = ReadAsNTally()
    for index in range(table.num_rows):
        where = f"{path}: row {index + 1}"
        cell = {name: _cell(values[index], f"{where}, column {name!r}") for name, values in columns.items()}
        ids = encode_text(cell["sequence"], f"{where}, column 'sequence'", lenient=lenient, rna=rna,
                          tally=tally)
        id_ = cell.get("id", "").strip() or f"{Path(path).name}:{index + 1}"
        group = cell.get("group", "").strip()
        split = _split_value(cell["split"], f"{where}, column 'split'") if "split" in cell else None
        # a null or empty label is left to genomamba.tasks.targets, which refuses it as for a CSV
        data.add(id_, ids, cell["label"].strip(), group or id_, split, where)
    tally.warn(str(path), "sequences")
    return data


def _bed4(path: str | os.PathLike):
    """A labelled BED file without a header line has exactly chrom, start, end, label (BED4)."""

    def names(width: int, line: int) -> list[str]:
        if width != 4:
            raise InputDataError(
                f"{path}: line {line}: {width} columns without a header line; give chrom, start, "
                "end, label (BED4) or add a header line naming the columns "
                "(e.g. '#chrom\\tstart\\tend\\tname\\tlabel')"
            )
        return ["chrom", "start", "end", "label"]

    return names


def read_bed(
    path: str | os.PathLike, genome: str | os.PathLike, *, lenient: bool = False, rna: bool = False
) -> LabelledData:
    """Read a BED file with labels and fetch its intervals from ``genome``; see the module docstring."""
    from genomamba.io.indexed import IndexedFasta

    parsed = parse_bed(path, required=("label",), headerless=_bed4(path))
    data = LabelledData(files=[str(path), str(genome)])
    tally = ReadAsNTally()
    with IndexedFasta(genome) as fasta:
        for interval in intervals(parsed, fasta.lengths, genome):
            where, chrom, start, end, fields = (interval.where, interval.chrom, interval.start, interval.end,
                                                interval.fields)
            ids, stats = interval_ids(fasta, interval, genome, lenient=lenient, rna=rna)
            tally.add(stats)
            id_ = fields.get("name", "").strip()
            group = fields.get("group", "").strip()
            split = _split_value(fields["split"], f"{where}, column 'split'") if "split" in fields else None
            data.add(id_ or f"{chrom}:{start + 1}-{end}", ids, fields["label"].strip(), group or chrom, split,
                     where)
    tally.warn(f"{path} (sequences from {genome})", "intervals")
    return data


def read_fasta_classes(
    classes: list[tuple[str, str | os.PathLike]], *, lenient: bool = False, rna: bool = False
) -> LabelledData:
    """Every record of each FASTA file is one example of its class: ``[(label, path), ...]``."""
    from genomamba.io.fasta import read_fasta

    data = LabelledData(files=[str(path) for _, path in classes])
    for label, path in classes:
        tally = ReadAsNTally()
        for record in read_fasta(path, lenient=lenient, rna=rna, softmask=False):
            where = f"{path}: record '{record.name}' (line {record.stats.header_line})"
            data.add(record.name, record.ids, label, record.name, None, where)
            tally.add(record.stats.encoding)
        tally.warn(str(path), "records")
    return data
