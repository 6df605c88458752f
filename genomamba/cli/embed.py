"""``genomamba embed``: embeddings of FASTA records or windows as a table (genomamba.infer.embed)."""

from __future__ import annotations

import click

from genomamba.cli.console import log, progress_bar
from genomamba.cli.infer_options import EXIT_CODES, check_context_options, main_progress_bar, shared_options
from genomamba.cli.options import changed_options
from genomamba.cli.streaming_options import streaming_options
from genomamba.cli.threads import threads_option
from genomamba.model.config import FIXED_POOLINGS

EPILOG = """\b
Examples:
  genomamba embed runs/demo/model promoters.fa -o promoters.parquet
  genomamba embed runs/demo/model chr1.fa.gz -o chr1_windows.parquet --window 1024 --stride 512
  genomamba embed runs/demo/model chr1.fa.gz -o chr1_in_context.parquet --window 1024 --context record
  genomamba embed ft/demo/model seqs.fa -o seqs.tsv --pooling max --no-conjoin
  genomamba embed runs/demo/model --bed peaks.bed --genome hg38.fa.bgz -o peaks.tsv   # BED intervals
  genomamba embed runs/demo/model chrX.fa.gz --per-base --layer 2 -o chrX_per_base/  # every base

\b
Output: one row per record (or window) with file, record, start, end (0-based, half-open;
with --bed the chromosome and genome coordinates), n_bases (its N count, IUPAC codes included),
with --bed the interval's name and strand, and emb_0000 ... emb_<d-1> (float32, the model's
width). In Python:
  X = pandas.read_parquet("promoters.parquet").filter(regex="^emb_").to_numpy()

\b
With --per-base: -o is a new directory holding one (length, d) .npy array per record
(float32, or float16 with --dtype), index.tsv (file, record, start, end, npy, row) and
manifest.json. Each whole record runs in one exact pass in planned memory (--max-gpu-memory,
--chunk-size, --residual-store; the plan is printed on stderr), so records of any length fit.

\b
With --context record: the same table, each window's embedding pooled from the hidden states of
its whole record, which runs in one exact pass in planned memory as with --per-base (without
--window: each whole record, as by default, in planned memory).

""" + EXIT_CODES

#: Options that cut, filter or pool windows, which whole-record per-base output does not take.
WINDOW_OPTIONS = ("window", "stride", "last", "bed", "genome", "pooling", "max_n_fraction", "context")


@click.command("embed", epilog=EPILOG)
@shared_options
@threads_option
@click.option("--pooling", type=click.Choice(FIXED_POOLINGS), default="mean",
              help="How the per-base hidden states of a window become one vector.")
@click.option("--conjoin/--no-conjoin", default=None,
              help="Average in the embedding of the reverse complement. [default: for PH models]")
@click.option("--layer", type=click.IntRange(min=1), default=None,
              help="Embed the output of this layer (1 = the first) instead of the last; the last "
                   "layer is often not the best input for a classifier. [default: the last]")
@click.option("--per-base", is_flag=True,
              help="One embedding per base of whole records, to the new directory -o (.npy arrays and "
                   "index.tsv), in one exact pass per record whatever its length.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32",
              help="--per-base: the arrays' number type.")
@streaming_options
def embed(model_dir: str, fasta: tuple[str, ...], bed: str | None, genome: str | None, out: str,
          window: int | None, stride: int | None, last: str, context: str, batch_size: int, device: str,
          lenient: bool, max_n_fraction: float, pooling: str, conjoin: bool | None, layer: int | None,
          per_base: bool, dtype: str, max_gpu_memory: int | None, chunk_size: int | None,
          residual_store: str) -> None:
    """Embed every record (or window) of the FASTA files with the model in MODEL_DIR."""
    from genomamba import api

    if per_base:
        given = changed_options(WINDOW_OPTIONS)
        if given:
            raise click.UsageError(f"--per-base embeds every base of whole records: {', '.join(given)} "
                                   "do not apply (drop them)")
        with progress_bar("embed", unit="base") as progress:
            api.embed_per_base(model_dir, fasta, out, layer=layer, dtype=dtype, conjoin=conjoin,
                               device=device, max_gpu_memory=max_gpu_memory, chunk_size=chunk_size,
                               residual_store=residual_store, lenient=lenient, log=log, progress=progress)
        return
    if changed_options(("dtype",)):
        raise click.UsageError("--dtype goes with --per-base")
    check_context_options(context, also="--per-base")
    stream = dict(max_gpu_memory=max_gpu_memory, chunk_size=chunk_size, residual_store=residual_store)
    with main_progress_bar("embed", unit="base") as progress:
        api.embed(model_dir, fasta, out, bed=bed, genome=genome, window=window, stride=stride, last=last,
                  max_n_fraction=max_n_fraction, pooling=pooling, conjoin=conjoin, layer=layer,
                  batch_size=batch_size, device=device, context=context, lenient=lenient, log=log,
                  progress=progress, **(stream if context == "record" else {}))
