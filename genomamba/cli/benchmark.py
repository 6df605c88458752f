"""``genomamba benchmark``: genomamba against strong baselines on suites of labelled tasks."""

from __future__ import annotations

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.cli.console import log
from genomamba.cli.options import ConfigDefault, ModelDirectory
from genomamba.cli.threads import threads_option

EPILOG = """\b
Examples:
  genomamba benchmark ../shared/benchmarks --out bench/                    # defaults, seeds 1,2,3
  genomamba benchmark suite/ --out bench/ --method kmer-lr --method cnn \\
      --method finetune:small-1k,pooling=attention,strand_specific=true
  genomamba benchmark suite/ --out bench/ --model runs/mlm/model --method finetune:model --method probe
  genomamba benchmark suite/ --out bench/ --task GUE_EMP_H3 --seeds 1-5 --published gue.yaml

\b
SUITE: a folder of task folders, each with train.csv and test.csv and optionally dev.csv
(sequence,label; dev is the validation split, else each method holds out part of train) and
published.yaml ({metric: mcc, value: 72.0, source: ...}, on the report's x 100 scale). A folder
holding train.csv is itself one task.

\b
Methods (--method, repeatable; the name is the method column):
  kmer-lr            logistic regression on 1- to 5-mer frequencies (C 0.05, standardised)
  onehot-lr          logistic regression on the one-hot sequence (fixed-length tasks only)
  cnn                the Genomic Benchmarks CNN (3 conv blocks, dense), early stopping
  finetune:PRESET    genomamba fine-tuned from scratch (tiny, small-1k, ...)
  finetune:model     genomamba fine-tuned from --model
  probe              embeddings of the frozen --model + logistic regression
finetune and probe take options after commas: any `genomamba finetune` setting as KEY=VALUE
(pooling=attention, strand_specific=true, lr=3e-4, epochs=20 ...); probe takes pooling=.

\b
OUT: results.csv (task, method, seed, accuracy, mcc, f1, auroc, n_train, n_test, seconds; one
row per run, written as each run ends), results.md (mean ± standard deviation per task and
method, published best beside), results.png, runs/ (fine-tuning logs). Runs already in
results.csv are skipped: rerun the same command to resume, or run processes with disjoint
--task sets into one OUT.

\b
Exit codes: 0 done; 1 failure; 2 usage (unknown method or option, a method that needs --model);
65 invalid suite (no train.csv or test.csv, an empty file, one class, a test label that train
lacks; the message names the file and line); 69 --device cuda without a GPU.
""" + SYSTEM_EXIT_CODES

#: Where the option defaults come from.
CONFIG = "genomamba.suite.runner:BenchmarkConfig"


@click.command("benchmark", epilog=EPILOG)
@click.argument("suites", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder OUT.")
@click.option("--method", "methods", cls=ConfigDefault, config=CONFIG, multiple=True, type=str,
              metavar="NAME", help="A method to run (repeatable).")
@click.option("--seeds", cls=ConfigDefault, config=CONFIG, type=str,
              shown=lambda seeds: ",".join(map(str, seeds)), help="Seeds, e.g. 1,2,3 or 1-5.")
@click.option("--task", "tasks", multiple=True, metavar="NAME", help="Only these tasks (repeatable).")
@click.option("--model", type=ModelDirectory(),
              help="Pretrained model directory, or the name of a shipped model, for finetune:model "
                   "and probe.")
@click.option("--published", type=click.Path(exists=True, dir_okay=False),
              help="YAML of published numbers: {TASK: {metric, value, source}}.")
@click.option("--metric", cls=ConfigDefault, config=CONFIG,
              type=click.Choice(["mcc", "accuracy", "f1", "auroc"]),
              help="The metric of results.md and results.png.")
@click.option("--device", cls=ConfigDefault, config=CONFIG, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--keep-models", is_flag=True, help="Keep each fine-tuned model in runs/ (about 8 MB each).")
@click.option("--report-only", is_flag=True,
              help="Run nothing: write results.md and results.png from OUT/results.csv as it is.")
@threads_option
def benchmark(suites: tuple[str, ...], out: str, methods: tuple[str, ...], seeds: str, tasks: tuple[str, ...],
              model: str | None, published: str | None, metric: str, device: str, keep_models: bool,
              report_only: bool) -> None:
    """Fine-tuned genomamba, probes and baselines on every task of SUITE folders, over seeds."""
    from genomamba import api

    api.benchmark(suites, out, methods=methods, seeds=seeds, tasks=tasks, model=model, published=published,
                  metric=metric, device=device, keep_models=keep_models, report_only=report_only, log=log)
