"""``genomamba evaluate``: metrics of a fine-tuned model on a labelled file (genomamba.train.evaluate)."""

from __future__ import annotations

import json

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.cli.console import log
from genomamba.cli.options import ConfigDefault, LabelledInput, ModelDirectory
from genomamba.cli.threads import threads_option

EPILOG = """\b
Examples:
  genomamba evaluate ft/demo/model --data test.csv
  genomamba evaluate ft/demo/model --data task.csv --split test --out ft/demo/eval
  genomamba evaluate ft/peaks/model --data held_out.bed --genome hg38.fa --out eval/peaks
  genomamba evaluate ft/prom/model --data promoter=prom_test.fa --data random=bg_test.fa

\b
--data takes the formats of `genomamba finetune` (CSV/TSV/Parquet with sequence,label columns; BED with
a label column and --genome; LABEL=FASTA, repeatable). Labels are mapped with the label map
stored in the model directory: a label the model was never trained on is an error (exit 65).

\b
Output: without --out, metrics.json is printed to stdout. With --out DIR: DIR/metrics.json,
DIR/confusion_matrix.png (binary, multiclass) and DIR/roc.png (binary, multilabel). Metrics:
n, loss, accuracy, MCC, F1, precision, recall, AUROC, AUPRC, per-class counts (n, predicted,
correct) and the confusion matrix; regression: MSE, RMSE, MAE, R2, Pearson, Spearman.

\b
Exit codes: 0 done; 2 usage; 65 invalid data, an unknown label, or a model directory that
cannot be loaded or has no sequence head; 69 --device cuda without a GPU; 75 another genomamba
process is writing OUT.
""" + SYSTEM_EXIT_CODES


@click.command("evaluate", epilog=EPILOG)
@click.argument("model_dir", type=ModelDirectory())
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=LabelledInput(),
    help="Labelled data (LABEL=FASTA is repeatable).",
)
@click.option("--genome", type=click.Path(exists=True, dir_okay=False), help="FASTA for BED data.")
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test"]),
    help="Only the rows whose split column says so. [default: all rows]",
)
@click.option("--out", type=click.Path(file_okay=False), help="Write metrics.json and plots here.")
@click.option("--batch-size", cls=ConfigDefault, config="genomamba.train.finetune_data:FinetuneConfig",
              field="eval_batch_size", type=click.IntRange(min=1), help="Sequences per forward pass.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", help="Where to run.")
@click.option("--lenient", is_flag=True, help="Read invalid sequence characters as N.")
@threads_option
def evaluate(model_dir: str, data: tuple[str, ...], genome: str | None, split: str | None, out: str | None,
             batch_size: int, device: str, lenient: bool) -> None:
    """Evaluate the fine-tuned model in MODEL_DIR on labelled data."""
    from genomamba import api

    report = api.evaluate(model_dir, data, genome=genome, split=split, out=out, batch_size=batch_size,
                          device=device, lenient=lenient, log=log)
    if out is None:
        click.echo(json.dumps(report, indent=2))
