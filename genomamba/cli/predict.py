"""``genomamba predict``: a fine-tuned model's predictions for FASTA records (genomamba.infer.predict)."""

from __future__ import annotations

import click

from genomamba.cli.infer_options import EXIT_CODES, log, run_reporting_errors, shared_options

EPILOG = """\b
Examples:
  genomamba predict ft/demo/model candidates.fa -o candidates.tsv
  genomamba predict ft/demo/model chr1.fa.gz -o chr1.parquet --window 1000 --stride 200

\b
Output: one row per record (or window) with file, record, start, end (0-based, half-open),
n_bases (its N count, IUPAC codes included), then
by the model's task: binary p_<positive label> and predicted; multiclass p_<label> per class and
predicted; multilabel p_<label> per label; regression value. The probabilities are those that
genomamba evaluate scores (PH models averaged over both strands).

""" + EXIT_CODES


@click.command("predict", epilog=EPILOG)
@shared_options
def predict(model_dir: str, fasta: tuple[str, ...], out: str, **options) -> None:
    """Predict every record (or window) of the FASTA files with the fine-tuned model in MODEL_DIR."""
    from genomamba.infer.predict import predict_fasta

    run_reporting_errors(lambda: predict_fasta(model_dir, list(fasta), out, log=log, **options))
