"""``genomamba predict``: a fine-tuned model's predictions for FASTA records (genomamba.infer.predict)."""

from __future__ import annotations

import click

from genomamba.cli.console import log
from genomamba.cli.infer_options import EXIT_CODES, check_context_options, main_progress_bar, shared_options
from genomamba.cli.streaming_options import streaming_options
from genomamba.cli.threads import threads_option

EPILOG = """\b
Examples:
  genomamba predict ft/demo/model candidates.fa -o candidates.tsv
  genomamba predict ft/demo/model chr1.fa.gz -o chr1.parquet --window 1000 --stride 200
  genomamba predict ft/demo/model chr1.fa.gz -o chr1.tsv --window 1000 --context record   # in context
  genomamba predict ft/demo/model chr1.fa.gz -o chr1.bedgraph --window 1000   # a browser track
  genomamba predict ft/demo/model chr1.fa.gz -o chr1.tsv --track-out chr1.bedgraph --window 1000
  genomamba predict ft/demo/model chr1.fa.gz -o chr1.bw --window 1000   # a bigWig track (genomamba[tracks])
  genomamba predict ft/demo/model --bed peaks.bed --genome hg38.fa.bgz -o peaks.tsv   # BED intervals

\b
Output: one row per record (or window) with file, record, start, end (0-based, half-open;
with --bed the chromosome and genome coordinates), n_bases (its N count, IUPAC codes included),
with --bed the interval's name and strand, then by the model's task: binary p_<positive label>
and predicted; multiclass p_<label> per class and predicted; multilabel p_<label> per label;
regression value. The probabilities are those that genomamba evaluate scores (PH models
averaged over both strands). A .bedgraph (or .bdg) output is a genome-browser track of one score
per window (record, start, end, score; --track picks the column when the task has several); a
.bw (or .bigwig) output holds the same in bigWig, with the records' lengths as chromosome sizes
(needs pyBigWig: pip install 'genomamba[tracks]'; with --bed, a BED sorted by chromosome and
start). A track's windows must not overlap (--stride >= --window, no --last shift).

\b
With --context record: the same rows, each window's scores from the sequence head applied to the
hidden states of its whole record at the window's positions; each record runs in one exact pass in
planned memory (--max-gpu-memory, --chunk-size, --residual-store; the plan is printed on stderr).

""" + EXIT_CODES


@click.command("predict", epilog=EPILOG)
@shared_options
@threads_option
@click.option("--track", help="The score column a .bedgraph or .bw output holds (e.g. p_coding). "
                              "[default: the only score of a binary or regression model]")
@click.option("--track-out", type=click.Path(dir_okay=False),
              help="Also write the --track score as a track to this file (bedGraph: .bedgraph, .bdg, "
                   "optionally .gz; bigWig: .bw, .bigwig), from the same pass over the windows.")
@streaming_options
def predict(model_dir: str, fasta: tuple[str, ...], bed: str | None, genome: str | None, out: str,
            window: int | None, stride: int | None, last: str, context: str, batch_size: int, device: str,
            lenient: bool, max_n_fraction: float, track: str | None, track_out: str | None,
            max_gpu_memory: int | None, chunk_size: int | None, residual_store: str) -> None:
    """Predict every record (or window) of the FASTA files with the fine-tuned model in MODEL_DIR."""
    from genomamba import api

    check_context_options(context)
    stream = dict(max_gpu_memory=max_gpu_memory, chunk_size=chunk_size, residual_store=residual_store)
    with main_progress_bar("predict", unit="base") as progress:
        api.predict(model_dir, fasta, out, bed=bed, genome=genome, window=window, stride=stride, last=last,
                    max_n_fraction=max_n_fraction, track=track, track_out=track_out, batch_size=batch_size,
                    device=device, context=context, lenient=lenient, log=log, progress=progress,
                    **(stream if context == "record" else {}))
