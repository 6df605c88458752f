"""``genomamba finetune``: train a sequence classifier or regressor (genomamba.train.finetune)."""

from __future__ import annotations

import sys

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.cli.console import log
from genomamba.cli.options import ConfigDefault, LabelledInput, ModelDirectory
from genomamba.cli.threads import threads_option
from genomamba.model.config import POOLINGS

#: Where the option defaults come from.
CONFIG = "genomamba.train.finetune_data:FinetuneConfig"

EPILOG = """\b
Examples:
  genomamba finetune --train task.csv --model runs/demo/model --out ft/demo
  genomamba finetune --train peaks.bed --genome hg38.fa --test test.bed --preset tiny --out ft/peaks
  genomamba finetune --class promoter=prom.fa --class random=bg.fa --preset tiny --out ft/prom
  genomamba finetune --train task.csv --preset tiny --out ft/seeds --seeds 1,2,3,4,5
  genomamba finetune --train task.csv --model runs/demo/model --lora 8 --out ft/lora

\b
Input formats (--train, --val, --test; chosen by the file name, any compression):
  CSV (.csv) or TSV (.tsv/.tab/.txt): a header row with the columns sequence and label, and
    optionally id, group (rows of one group never straddle train and validation) and split
    (train/val/test: val and test rows of the --train file are the validation and test sets).
    Multi-label rows separate their labels with ';'.
  Parquet (.parquet/.pq): the same columns by name; labels may be numbers, or lists (multi-label).
  BED (.bed) + --genome FASTA: chrom, start, end (0-based, half-open) and the label as the 4th
    column (BED4), or a header line ('#chrom start end name label strand group split', any
    order) naming a label column; group defaults to the chromosome; strand '-' is reverse
    complemented.
  FASTA (or GenBank) per class: LABEL=FILE (repeatable; --class LABEL=FILE is --train LABEL=FILE):
    every record is one example of that class.
Sequences: A C G T N in any case; IUPAC codes read as N; anything else is an error (--lenient: N).

\b
Tasks: inferred from the training labels (override with --task): ';' anywhere -> multilabel;
numbers with a fraction -> regression; two labels -> binary (the second in sorted order is the
positive class unless --positive names it); more -> multiclass. A label in validation or test
data that the training data lacks is an error.

\b
Without validation data, --val-fraction of the training groups (seeded) is held out. Early
stopping on the validation --metric (default: mcc; auroc for multilabel; loss for regression)
after --patience epochs without improvement; the best epoch's model is exported.

\b
OUT: finetune_config.json, metrics.jsonl (per epoch), metrics.json (val and test metrics: accuracy,
MCC, F1, AUROC, AUPRC, per-class counts, confusion matrix), confusion_matrix.png, roc.png, model/
(the best model with its label map), adapter/ (--lora with --model: the LoRA adapters and the
head alone, in PEFT's format). --seeds 1,2,3: one run per seed in OUT/seed-N/, and OUT/summary.json
+ summary.md with mean, std and spread (max - min) of every metric.

\b
Several GPUs (one process each; see docs/training.md, "Fine-tuning on several GPUs"):
  torchrun --nproc-per-node 2 $(which genomamba) finetune --train task.csv --model M --out ft/x
Each batch (--batch-size in all) and the validation and test rows are shared out; the results are
those of one GPU (with --dropout 0: up to float summation order); only rank 0 writes OUT.

\b
Exit codes: 0 done; 1 OUT is not empty (pass --overwrite); 2 usage (e.g. --model and --preset
together, --lora with --freeze-backbone, BED without --genome); 65 invalid labelled data (message
names file, line, column) or model directory; 69 --device cuda without a GPU, --lora without
peft; 75 another genomamba process is writing OUT.
""" + SYSTEM_EXIT_CODES


@click.command("finetune", epilog=EPILOG)
@click.option(
    "--train",
    "train",
    multiple=True,
    type=LabelledInput(),
    help="Training data (LABEL=FASTA is repeatable).",
)
@click.option("--class", "classes", multiple=True, type=LabelledInput(), metavar="LABEL=FASTA",
              help="Same as --train LABEL=FASTA.")
@click.option("--val", "val", multiple=True, type=LabelledInput(), help="Validation data.")
@click.option("--test", "test", multiple=True, type=LabelledInput(), help="Test data.")
@click.option("--genome", type=click.Path(exists=True, dir_okay=False), help="FASTA for BED inputs.")
@click.option("--model", type=ModelDirectory(),
              help="Pretrained model directory, or the name of a shipped model (genomamba doctor "
                   "lists them).")
@click.option("--preset", help="Or train from scratch: tiny, small-1k, base-131k, long-1m.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory OUT.")
@click.option(
    "--task",
    type=click.Choice(["binary", "multiclass", "multilabel", "regression"]),
    help="Override task inference.",
)
@click.option("--positive", help="Binary: the positive class label.")
@click.option(
    "--rc-strategy",
    type=click.Choice(["none", "ps", "ph"]),
    help="--preset only. [default: the preset's, ph]",
)
@click.option("--pooling", cls=ConfigDefault, config=CONFIG, type=click.Choice(POOLINGS),
              help="Head pooling; attention learns which positions matter.")
@click.option("--dropout", cls=ConfigDefault, config=CONFIG, type=click.FloatRange(0, 1, max_open=True),
              help="Head dropout.")
@click.option("--val-fraction", cls=ConfigDefault, config=CONFIG, type=click.FloatRange(0, 1, max_open=True),
              help="Share of training groups held out when there is no validation data (0: none).")
@click.option("--epochs", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=1))
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many optimiser steps.")
@click.option("--batch-size", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=1))
@click.option("--lr", cls=ConfigDefault, config=CONFIG, type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate.")
@click.option("--weight-decay", cls=ConfigDefault, config=CONFIG, type=click.FloatRange(min=0))
@click.option("--warmup-fraction", cls=ConfigDefault, config=CONFIG,
              type=click.FloatRange(0, 1, max_open=True), help="LR warm-up share of all steps.")
@click.option("--patience", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=0),
              help="Epochs without improvement before stopping (0: never).")
@click.option(
    "--metric",
    help=(
        "Early-stopping metric: loss, accuracy, mcc, f1, auroc, auprc (classification); r2, pearson, "
        "spearman, mse, mae (regression)."
    ),
)
@click.option(
    "--strand-specific/--both-strands",
    default=None,
    help="Whether the label belongs to the strand as given (splice sites, oriented promoters: no RC "
    "augmentation, no conjoining over both strands) or holds on both (ChIP-seq peaks). [default: "
    "tested on the data: a linear model's validation accuracy as given vs reverse-complemented]",
)
@click.option(
    "--freeze-backbone",
    is_flag=True,
    help="--model only: train the head alone on the frozen backbone (a linear probe).",
)
@click.option(
    "--lora",
    type=click.IntRange(min=1),
    metavar="RANK",
    help="Train rank-RANK LoRA adapters on the Mamba layers' in/out projections with the head, the "
    "other weights frozen (needs peft: pip install 'genomamba[peft]'). OUT/model has the adapters "
    "merged in; OUT/adapter holds them alone.",
)
@click.option(
    "--lora-alpha",
    type=click.FloatRange(min=0, min_open=True),
    help="LoRA scaling: updates are multiplied by alpha / RANK. [default: 2 * RANK]",
)
@click.option("--lora-dropout", cls=ConfigDefault, config=CONFIG, type=click.FloatRange(0, 1, max_open=True),
              help="Dropout on the LoRA adapters' input.")
@click.option(
    "--rc-augment/--no-rc-augment",
    default=None,
    help="Reverse-complement training sequences at random. [default: on unless PS]",
)
@click.option("--seed", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=0))
@click.option("--seeds", help="Several runs, e.g. 1,2,3,4,5 or 1-5: OUT/seed-N/ and OUT/summary.json.")
@click.option("--device", cls=ConfigDefault, config=CONFIG, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--lenient", is_flag=True, help="Read invalid sequence characters as N.")
@click.option("--overwrite", is_flag=True, help="Replace the results in a non-empty OUT.")
@threads_option
def finetune(
    train: tuple[str, ...], classes: tuple[str, ...], val: tuple[str, ...], test: tuple[str, ...],
    genome: str | None, model: str | None, preset: str | None, out: str, task: str | None,
    positive: str | None, rc_strategy: str | None, pooling: str, dropout: float, val_fraction: float,
    epochs: int, max_steps: int | None, batch_size: int, lr: float, weight_decay: float,
    warmup_fraction: float, patience: int, metric: str | None, strand_specific: bool | None,
    freeze_backbone: bool, lora: int | None, lora_alpha: float | None, lora_dropout: float,
    rc_augment: bool | None, seed: int, seeds: str | None, device: str, lenient: bool, overwrite: bool,
) -> None:
    """Fine-tune a model on labelled sequences and export the best one to OUT/model."""
    from genomamba import api

    train = train + classes
    if not train:
        raise click.UsageError("give training data: --train FILE or --class LABEL=FASTA")
    api.finetune(
        train, out, val=val, test=test,
        genome=genome, model=model, preset=preset, task=task, positive=positive, rc_strategy=rc_strategy,
        pooling=pooling, dropout=dropout, val_fraction=val_fraction, epochs=epochs, max_steps=max_steps,
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup_fraction=warmup_fraction,
        patience=patience, metric=metric, strand_specific=strand_specific, freeze_backbone=freeze_backbone,
        lora=lora, lora_alpha=lora_alpha, lora_dropout=lora_dropout, rc_augment=rc_augment, seed=seed,
        seeds=seeds, device=device, lenient=lenient, overwrite=overwrite, progress=sys.stderr.isatty(),
        log=log,
    )
