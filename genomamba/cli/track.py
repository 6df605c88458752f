"""``genomamba track``: per-base masked-LM scores of whole records as tracks (genomamba.infer.lm_track)."""

from __future__ import annotations

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.cli.console import log, progress_bar
from genomamba.cli.options import ModelDirectory
from genomamba.cli.streaming_options import streaming_options
from genomamba.cli.threads import threads_option

EPILOG = """\b
Examples:
  genomamba track runs/mlm/model chrX.fa.gz -o chrX_ref_ll.bw
  genomamba track runs/mlm/model chrX.fa.gz -o chrX_entropy.bedgraph --score entropy
  genomamba track runs/mlm/model chrX.fa.gz -o chrX.parquet --track-out chrX_ref_ll.bw
  genomamba track runs/mlm/model chrX.fa.gz -o chrX.bw --max-gpu-memory 20G

\b
Each record runs through the model in one exact pass, whatever its length: layer by layer,
chunk by chunk, with the memory planned before starting (printed on stderr). For every A/C/G/T
base: ref_ll, log P(reference base) over the four bases (natural log), and entropy, of that
distribution (nats); N bases get no value. The pass is unmasked: the model sees the base it
scores. A .bw/.bigwig or .bedgraph/.bdg output holds the --score column as 1-base intervals; a
.parquet, .tsv or .csv table holds file, record, start, end, base, ref_ll and entropy.

\b
Exit codes: 0 done; 2 usage (a bad option or output suffix); 65 an invalid FASTA file, no
A/C/G/T base, or a model directory that cannot be loaded or has no masked-LM head; 69 --device
cuda without a GPU, a .bw output without pyBigWig, or not enough memory (GPU, host, or disk for
the residual stream): one error line, nothing written; 75 another genomamba process is writing
the output.""" + SYSTEM_EXIT_CODES


@click.command("track", epilog=EPILOG)
@click.argument("model_dir", type=ModelDirectory())
@click.argument("fasta", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="Output: a track (.bw, .bigwig, .bedgraph, .bdg, text ones optionally .gz) or a table "
                   "(.parquet, .tsv, .csv).")
@click.option("--score", type=click.Choice(["ref-ll", "entropy"]), default="ref-ll",
              help="The score a track output holds.")
@click.option("--track-out", type=click.Path(dir_okay=False),
              help="Also write the --score track to this file (.bw, .bigwig, .bedgraph, .bdg), from the "
                   "same pass.")
@click.option("--conjoin/--no-conjoin", default=None,
              help="Average in the reverse complement's predictions. [default: for PH models]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", help="Where to run.")
@click.option("--lenient", is_flag=True, help="Read invalid sequence characters as N.")
@streaming_options
@threads_option
def track(model_dir: str, fasta: tuple[str, ...], out: str, score: str, track_out: str | None,
          conjoin: bool | None, device: str, lenient: bool, max_gpu_memory: int | None,
          chunk_size: int | None, residual_store: str) -> None:
    """Per-base masked-LM scores of every record of the FASTA files, as a genome track."""
    from genomamba import api

    with progress_bar("track", unit="base") as progress:
        api.track(model_dir, fasta, out, score=score, track_out=track_out, conjoin=conjoin, device=device,
                  max_gpu_memory=max_gpu_memory, chunk_size=chunk_size, residual_store=residual_store,
                  lenient=lenient, log=log, progress=progress)
