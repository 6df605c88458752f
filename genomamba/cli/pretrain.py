"""``genomamba pretrain``: masked-language-model pretraining on token shards (genomamba.train.pretrain)."""

from __future__ import annotations

import contextlib
import sys

import click

from genomamba.cli.threads import threads_option
from genomamba.errors import GenomambaError

EPILOG = """\b
Examples:
  genomamba pretrain --data shards/lambda --preset tiny --out runs/demo --max-steps 40 --seq-len 256
  genomamba pretrain --data shards/hg38 --preset base-131k --out runs/hg38 --config run.yaml
  genomamba pretrain --data shards/hg38 --preset base-131k --out runs/hg38 --resume

\b
run.yaml holds per-run values only, under the option names with underscores (seq_len, lr, ...),
plus model: (preset overrides), betas, weight_decay, grad_clip, min_lr_ratio, mask_prob,
max_n_fraction, rc_augment, seq_len_start, seq_len_warmup_steps, keep_checkpoints. Unknown keys
are errors. Command-line options win over run.yaml; defaults are in docs/training.md.

\b
RUN_DIR (--out): run_config.json, metrics.jsonl (one line per step), metrics.png,
checkpoints/step-XXXXXX/ (resume state, atomic), model/ (the final model directory).
SIGTERM/SIGINT write a checkpoint after the current step and stop; --resume continues exactly.
Shards are checked before RUN_DIR is made: each shard's length, dtype and size against the
manifest, every token id (a base or padding), and with --verify-shards each sha256.
--seq-len longer than every window is an error (each crop would be mostly padding); the log
gives the real bases per step and warns when crops are over 25% padding.
Exit codes: 0 finished; 1 RUN_DIR already holds a run (use --resume); 2 usage or bad run config
(an unknown --preset: the presets are listed); 65 missing or invalid token shards (truncated,
damaged, a sha256 that differs), or --seq-len longer than every window; 69 --device cuda without
a GPU, or not enough memory for the model or a step; 73 RUN_DIR cannot be created (read-only,
permission denied); 74 writing failed (disk full); 75 another genomamba process is writing
RUN_DIR; 130/143 stopped by SIGINT/SIGTERM after writing a checkpoint. A run that fails before
its first checkpoint leaves no RUN_DIR behind.

\b
Several GPUs (one process each; see docs/training.md, "Several GPUs"):
  torchrun --nproc-per-node 2 $(which genomamba) pretrain --data ... --tokens-per-step ...
The number of processes must divide the micro-batches of every step (exit 2 otherwise);
only rank 0 writes to RUN_DIR; --deterministic also makes multi-process runs repeatable.
"""


@click.command("pretrain", epilog=EPILOG)
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(),
    help="Token-shard directory (repeatable).",
)
@click.option(
    "--preset",
    default=None,
    help="Model preset: tiny, small-1k, base-131k, long-1m (required for a new run).",
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="RUN_DIR.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="Run YAML.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Optimiser steps. [default: 1000]")
@click.option("--seq-len", type=click.IntRange(min=1), help="Crop length in bases. [default: 1024]")
@click.option(
    "--tokens-per-step",
    type=click.IntRange(min=1),
    help="Tokens per optimiser step. [default: batch × seq-len]",
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Crops per forward pass. [default: 8]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate. [default: 2e-3]")
@click.option("--warmup-steps", type=click.IntRange(min=0), help="Linear LR warm-up steps. [default: 100]")
@click.option(
    "--seed", type=click.IntRange(min=0), help="Seed of model init, crops and masking. [default: 0]"
)
@click.option(
    "--checkpoint-every", type=click.IntRange(min=1), help="Steps between checkpoints. [default: 500]"
)
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in RUN_DIR.")
@click.option(
    "--deterministic",
    is_flag=True,
    default=None,
    help="Deterministic algorithms only (repeatable runs for regression tests; slower on GPU).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where to train. [default: auto]")
@click.option(
    "--verify-shards",
    is_flag=True,
    default=None,
    help="Check each shard's sha256 against its manifest before training (reads all the data once).",
)
@threads_option
def pretrain(config_path: str | None, resume: bool, **options) -> None:
    """Pretrain a masked-language model on token shards and export it to RUN_DIR/model."""
    from pathlib import Path

    from genomamba.model.config import ConfigError
    from genomamba.train.config import load_yaml, read_run_config, resolve_config

    options["data"] = list(options["data"])
    for flag in ("deterministic", "verify_shards"):
        if not options[flag]:
            options[flag] = None  # not given: leave the run YAML's value
    try:
        yaml_values = load_yaml(config_path) if config_path else {}
        saved = read_run_config(Path(options["out"])) if resume else None
        if saved is None and options["preset"] is None and "preset" not in yaml_values:
            raise click.UsageError("--preset is required (or preset: in --config) for a new run")
        config = resolve_config(yaml_values, options, saved)
    except ConfigError as exc:
        raise click.UsageError(f"{config_path + ': ' if config_path else ''}{exc}") from exc

    from genomamba.train.distributed import world_from_env

    try:  # under torchrun: fail before any process waits for another
        world = world_from_env()
        config.check_world_size(world.world_size)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc

    from genomamba.io.locks import output_lock
    from genomamba.train.pretrain import pretrain as run_pretrain

    try:
        # Rank 0 is the only writer of RUN_DIR: it alone takes the lock (exit 75 if another run holds it).
        with output_lock(config.out, note=_log) if world.is_main else contextlib.nullcontext():
            result = run_pretrain(config, resume=resume, progress=sys.stderr.isatty(), log=_log)
    except GenomambaError as exc:
        where = f"rank {world.rank}: " if world.world_size > 1 else ""
        click.echo(f"error: {where}{exc}", err=True)
        sys.exit(exc.exit_code)
    if result.status == "interrupted":
        sys.exit(128 + result.signal if result.signal else 1)


def _log(message: str) -> None:
    click.echo(message, err=True)
