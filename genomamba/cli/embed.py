"""``genomamba embed``: embeddings of FASTA records or windows as a table (genomamba.infer.embed)."""

from __future__ import annotations

import click

from genomamba.cli.infer_options import EXIT_CODES, log, run_reporting_errors, shared_options
from genomamba.model.config import FIXED_POOLINGS

EPILOG = """\b
Examples:
  genomamba embed runs/demo/model promoters.fa -o promoters.parquet
  genomamba embed runs/demo/model chr1.fa.gz -o chr1_windows.parquet --window 1024 --stride 512
  genomamba embed ft/demo/model seqs.fa -o seqs.tsv --pooling max --no-conjoin
  genomamba embed runs/demo/model --bed peaks.bed --genome hg38.fa.bgz -o peaks.tsv   # BED intervals

\b
Output: one row per record (or window) with file, record, start, end (0-based, half-open;
with --bed the chromosome and genome coordinates), n_bases (its N count, IUPAC codes included),
with --bed the interval's name and strand, and emb_0000 ... emb_<d-1> (float32, the model's
width). In Python:
  X = pandas.read_parquet("promoters.parquet").filter(regex="^emb_").to_numpy()

""" + EXIT_CODES


@click.command("embed", epilog=EPILOG)
@shared_options
@click.option("--pooling", type=click.Choice(FIXED_POOLINGS), default="mean",
              help="How the per-base hidden states of a window become one vector.")
@click.option("--conjoin/--no-conjoin", default=None,
              help="Average in the embedding of the reverse complement. [default: for PH models]")
@click.option("--layer", type=click.IntRange(min=1), default=None,
              help="Embed the output of this layer (1 = the first) instead of the last; the last "
                   "layer is often not the best input for a classifier. [default: the last]")
def embed(model_dir: str, fasta: tuple[str, ...], out: str, **options) -> None:
    """Embed every record (or window) of the FASTA files with the model in MODEL_DIR."""
    from genomamba.infer.embed import embed_fasta

    def run(progress):
        return embed_fasta(model_dir, list(fasta), out, log=log, progress=progress, **options)

    run_reporting_errors(run, "embed")
