"""``genomamba make-task``: build a labelled task CSV from a genome and its annotation (genomamba.tasks)."""

from __future__ import annotations

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.cli.console import log

EPILOG = """\b
Tasks:
  coding   windows of --window bases labelled 'coding' (inside one CDS) or 'intergenic' (no
           annotated feature but the chromosome, landmark regions, ARS and binding sites);
           other windows are left out; classes balanced within each split.

\b
Example (the demo task of `make demo`):
  genomamba make-task coding --fasta data/demo/yeast_chrI_chrII.fa \\
      --gff3 data/demo/yeast_chrI_chrII.gff3 --test-chrom chrI -o task.csv

\b
Output CSV columns: id (chrom:start-end, 1-based), sequence, label, group (the --group-size
block a window starts in: neighbouring windows share a group, so a grouped validation split never
separates them), split (test for --test-chrom records, else train). Written atomically.
Exit codes: 0 ok; 2 usage; 65 invalid FASTA/GFF3, an unknown --test-chrom, or no window of a class;
75 another genomamba process is writing the CSV.
""" + SYSTEM_EXIT_CODES


@click.command("make-task", epilog=EPILOG)
@click.argument("task", type=click.Choice(["coding"]))
@click.option("--fasta", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Genome FASTA (or GenBank).")
@click.option(
    "--gff3", required=True, type=click.Path(exists=True, dir_okay=False), help="Its GFF3 annotation."
)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output CSV.")
@click.option("--window", type=click.IntRange(min=1), default=200, show_default=True, help="Window length.")
@click.option(
    "--per-class",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="At most this many windows per class and split.",
)
@click.option("--test-chrom", multiple=True, help="Record(s) whose windows form the test split (repeatable).")
@click.option(
    "--group-size", type=click.IntRange(min=1), default=50_000, show_default=True, help="Group block size."
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the class sampling."
)
def make_task(task: str, fasta: str, gff3: str, out: str, window: int, per_class: int,
              test_chrom: tuple[str, ...], group_size: int, seed: int) -> None:
    """Build the labelled windows of TASK from a genome and its GFF3 into a CSV."""
    from collections import Counter

    from genomamba import api

    rows = api.make_task(task, fasta, gff3, out, window=window, per_class=per_class, test_chroms=test_chrom,
                         group_size=group_size, seed=seed, log=log)
    counts = Counter((r["split"], r["label"]) for r in rows)
    shown = ", ".join(f"{split} {label} {n}" for (split, label), n in sorted(counts.items()))
    log(f"make-task {task}: {len(rows)} windows ({shown}) -> {out}")
