"""Which rows of labelled tasks occur, exactly and on either strand, in genomes of a corpus.

Answers "was this task drawn from a genome we pretrain on?" with counts, per task and split: a
task row counts when its whole sequence (upper-cased) appears in a genome record, forward or
reverse-complemented. Candidate positions come from a dictionary of each row's first 32 bases
(and of its reverse complement's), so one pass over the genome checks every row. Rows shorter
than 32 bases or with N in their first 32 are not looked up (counted as `skipped`).
The numbers in docs/pretraining.md ("Overlap with the development suite") come from:

    python scripts/suite_overlap.py --task ../shared/benchmarks/GUE_EMP_H3 \
        --task ../shared/benchmarks/GUE_EMP_H4 results/pretrain_corpus/genomes/yeast_chrI_chrII/chr*.fa

Prints one TSV line per task and split: task, split, rows, found, skipped. Pure Python: a few
minutes for the 70 Mb of human chrX against the eight human GUE tasks.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from genomamba.alphabet import decode, reverse_complement
from genomamba.io.fasta import read_fasta
from genomamba.io.labels import encode_text

K = 32
SPLITS = ("train", "dev", "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fasta", nargs="+", type=Path, help="genome FASTA files (any compression)")
    parser.add_argument("--task", action="append", type=Path, required=True, help="task folder (repeatable)")
    args = parser.parse_args()

    probes: dict[bytes, list[tuple[str, str, int, bytes]]] = {}  # first K bases -> rows that start so
    counts: dict[tuple[str, str], list[int]] = {}  # (task, split) -> [rows, skipped]
    for task in args.task:
        for split in SPLITS:
            path = task / f"{split}.csv"
            if not path.exists():
                continue
            tally = counts.setdefault((task.name, split), [0, 0])
            with open(path, newline="") as handle:
                for row, record in enumerate(csv.DictReader(handle)):
                    tally[0] += 1
                    ids = encode_text(record["sequence"], f"{path} line {row + 2}")
                    forward = decode(ids)
                    if len(forward) < K or b"N" in forward[:K]:
                        tally[1] += 1
                        continue
                    for seq in {forward, decode(reverse_complement(ids))}:
                        probes.setdefault(seq[:K], []).append((task.name, split, row, seq))

    found: set[tuple[str, str, int]] = set()
    for path in args.fasta:
        for record in read_fasta(path, lenient=True):
            genome = decode(record.ids)
            for pos in range(len(genome) - K + 1):
                for task, split, row, seq in probes.get(genome[pos : pos + K], ()):
                    if genome.startswith(seq, pos):
                        found.add((task, split, row))

    print("task\tsplit\trows\tfound\tskipped")
    for (task, split), (rows, skipped) in counts.items():
        hits = sum(1 for t, s, _ in found if (t, s) == (task, split))
        print(f"{task}\t{split}\t{rows}\t{hits}\t{skipped}")


if __name__ == "__main__":
    main()
