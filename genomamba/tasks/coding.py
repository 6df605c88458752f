"""A labelled task from a genome and its GFF3: fixed-size windows, coding vs intergenic.

``coding_task(fasta, gff3, ...)`` tiles every record of ``fasta`` with non-overlapping windows of
``window`` bases and labels a window

* ``coding`` when it lies entirely inside one ``CDS`` feature (either strand);
* ``intergenic`` when it overlaps no feature of the annotation at all, except the
  ``chromosome``/``region`` extent lines and the features in :data:`NEUTRAL_TYPES` (replication
  origins, protein binding sites), which do not make a window genic;

and leaves out every other window (partly coding, inside introns, UTRs, RNA genes, repeats...).
Within each split the classes are balanced: a seeded sample of as many windows of each class as
the rarer class has, at most ``per_class`` (yeast chrII is ~70% coding).

Columns of the table (the CSV format of :mod:`genomamba.io.labels`): ``id`` (samtools region,
1-based inclusive), ``sequence`` (as in the FASTA, soft-masking kept), ``label``, ``group``
(``chrom:block``, the ``group_size``-base block the window starts in, so a grouped split never
puts neighbouring windows on both sides) and ``split`` (``test`` for the chromosomes in
``test_chroms``, else ``train``). numpy only; no torch.
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from genomamba.errors import InputDataError
from genomamba.io.atomic import replacing
from genomamba.io.compression import open_input
from genomamba.io.fasta import read_fasta

#: Annotation lines that describe extents or small sites, not genes: they never make a window genic.
NEUTRAL_TYPES = frozenset({"chromosome", "region", "ARS", "binding_site", "nucleotide_match"})
CODING, INTERGENIC = "coding", "intergenic"
COLUMNS = ("id", "sequence", "label", "group", "split")


def read_gff3_intervals(path: str | os.PathLike) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """``{seqid: {feature type: [(start, end), ...]}}`` of a GFF3 file, 0-based half-open.

    Stops at a ``##FASTA`` section; ``#`` lines and blank lines are skipped.

    Raises:
        InputDataError: a line without 9 tab-separated columns, a non-integer or inverted
            coordinate (naming file and line).
    """
    with open_input(path) as stream:
        text = b"".join(stream.blocks()).decode("utf-8", "replace")
    intervals: dict[str, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("##FASTA"):
            break
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 9:
            raise InputDataError(
                f"{path}: line {number}: a GFF3 feature line has 9 tab-separated columns, found {len(fields)}"
            )
        try:
            start, end = int(fields[3]), int(fields[4])
        except ValueError:
            raise InputDataError(
                f"{path}: line {number}: start/end (columns 4-5) must be integers, got "
                f"{fields[3]!r}, {fields[4]!r}"
            ) from None
        if start < 1 or end < start:
            raise InputDataError(f"{path}: line {number}: need 1 <= start <= end, got {start}, {end}")
        intervals[fields[0]][fields[2]].append((start - 1, end))  # 1-based inclusive -> half-open
    return intervals


def _coverage(length: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """Prefix sums of a 0/1 coverage track: covered bases in [a, b) = c[b] - c[a]."""
    delta = np.zeros(length + 1, dtype=np.int64)
    for start, end in spans:
        delta[min(start, length)] += 1
        delta[min(end, length)] -= 1
    covered = (np.cumsum(delta[:-1]) > 0).astype(np.int64)
    return np.concatenate([[0], np.cumsum(covered)])


def _inside_one(starts: np.ndarray, window: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """For each window [s, s+window): does a single span contain it?"""
    inside = np.zeros(starts.size, dtype=bool)
    for start, end in spans:
        first = np.searchsorted(starts, start)
        last = np.searchsorted(starts, end - window, side="right")
        inside[first:last] = True
    return inside


def coding_task(
    fasta: str | os.PathLike,
    gff3: str | os.PathLike,
    *,
    window: int = 200,
    per_class: int | None = 1000,
    test_chroms: tuple[str, ...] = (),
    group_size: int = 50_000,
    seed: int = 0,
) -> list[dict[str, str]]:
    """The coding-vs-intergenic windows as rows (dicts of :data:`COLUMNS`); see the module docstring.

    Raises:
        InputDataError: unreadable FASTA or GFF3, a ``test_chroms`` name not in the FASTA, or no
            window of some class.
    """
    if window < 1 or group_size < 1 or (per_class is not None and per_class < 1):
        raise ValueError("window, group_size and per_class must be positive")
    features = read_gff3_intervals(gff3)
    records = {r.name: r for r in read_fasta(fasta)}
    unknown = sorted(set(test_chroms) - set(records))
    if unknown:
        raise InputDataError(f"{fasta}: no record named {', '.join(map(repr, unknown))} (--test-chrom)")
    rows: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for name, record in records.items():
        types = features.get(name, {})
        starts = np.arange(0, record.length - window + 1, window)
        genic = [span for kind, spans in types.items() if kind not in NEUTRAL_TYPES for span in spans]
        covered = _coverage(record.length, genic)
        free = covered[starts + window] - covered[starts] == 0
        coding = _inside_one(starts, window, sorted(types.get("CDS", [])))
        split = "test" if name in test_chroms else "train"
        sequence = _decode(record)
        for label, chosen in ((CODING, coding), (INTERGENIC, free & ~coding)):
            for start in starts[chosen].tolist():
                rows[(split, label)].append(
                    {
                        "id": f"{name}:{start + 1}-{start + window}",
                        "sequence": sequence[start : start + window],
                        "label": label,
                        "group": f"{name}:{start // group_size * group_size + 1}",
                        "split": split,
                    }
                )
    for split in sorted({s for s, _ in rows}):
        for label in (CODING, INTERGENIC):
            if not rows.get((split, label)):
                raise InputDataError(f"{gff3}: no {label} window of {window} bases in the {split} split")
    rng = np.random.default_rng(seed)
    table = []
    for split, label in sorted(rows):
        chosen = rows[(split, label)]
        # balanced classes: as many of each as the rarer class has (at most per_class)
        keep = min(len(rows[(split, CODING)]), len(rows[(split, INTERGENIC)]), per_class or len(chosen))
        if len(chosen) > keep:
            picked = np.sort(rng.choice(len(chosen), keep, replace=False))
            chosen = [chosen[i] for i in picked]
        table.extend(chosen)
    return table


def _decode(record) -> str:
    from genomamba.alphabet import decode

    return decode(record.ids, record.softmask).decode("ascii")


def write_task_csv(rows: list[dict[str, str]], path: str | os.PathLike) -> Path:
    """Write rows as CSV (header :data:`COLUMNS`) through a temporary file renamed into place."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path
