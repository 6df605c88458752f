"""``genomamba pretrain``: masked-language-model pretraining on token shards (genomamba.train.pretrain)."""

from __future__ import annotations

import sys

import click

from genomamba.cli.console import log
from genomamba.cli.options import ConfigDefault, from_command_line
from genomamba.cli.threads import threads_option

#: Where the option defaults come from; a run YAML's values win over them (see from_command_line()).
CONFIG = "genomamba.train.config:PretrainConfig"

EPILOG = """\b
Examples:
  genomamba pretrain --data shards/lambda --preset tiny --out runs/demo --max-steps 40 --seq-len 256
  genomamba pretrain --data shards/hg38 --preset base-131k --out runs/hg38 --config run.yaml
  genomamba pretrain --data shards/hg38 --preset base-131k --out runs/hg38 --resume
  genomamba pretrain --data shards/hg38 --val-data heldout/hg38 --preset small-1k --out runs/val

\b
run.yaml holds per-run values only, under the option names with underscores (seq_len, lr, ...),
plus model: (preset overrides), betas, weight_decay, grad_clip, min_lr_ratio, mask_prob,
max_n_fraction, rc_augment, seq_len_start, seq_len_warmup_steps, keep_checkpoints. Unknown keys,
wrong types and out-of-range values (model: overrides included) are errors found before anything
is written. Command-line options win over run.yaml; defaults are in docs/training.md.

\b
RUN_DIR (--out): run_config.json, metrics.jsonl (one line per step), metrics.png,
checkpoints/step-XXXXXX/ (resume state, atomic), model/ (the final model directory), and with
--val-data val_metrics.jsonl: the masked-LM loss, perplexity and accuracy on fixed crops of each
held-out set at each --val-seq-len, every --val-every steps and at the end (one line to the log
per validation).
SIGTERM/SIGINT write a checkpoint after the current step and stop; --resume continues exactly.
Shards are checked before RUN_DIR is made: each shard's length, dtype and size against the
manifest, every token id (a base or padding), and with --verify-shards each sha256.
--seq-len longer than every window is an error (each crop would be mostly padding); the log
gives the real bases per step and warns when crops are over 25% padding.
Exit codes: 0 finished; 1 RUN_DIR already holds a run (use --resume); 2 usage or bad run config
(one line naming the file and key, e.g. run.yaml: model.mixer.d_stat: unknown key (did you mean
d_state?); an unknown --preset: the presets are listed); 65 missing or invalid token shards
of --data or --val-data (truncated, damaged, a sha256 that differs), or --seq-len longer than
every window; 69 --device cuda without a GPU, or not enough memory for the model or a step;
73 RUN_DIR cannot be created (read-only, permission denied); 74 writing failed (disk full);
75 another genomamba process is writing RUN_DIR; 130/143 stopped by SIGINT/SIGTERM after writing
a checkpoint. A run that fails before its first checkpoint leaves no RUN_DIR behind.

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
@click.option("--max-steps", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=1),
              help="Optimiser steps.")
@click.option("--seq-len", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=1),
              help="Crop length in bases.")
@click.option(
    "--tokens-per-step",
    type=click.IntRange(min=1),
    help="Tokens per optimiser step. [default: batch × seq-len]",
)
@click.option("--batch-size", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=1),
              help="Crops per forward pass.")
@click.option("--lr", cls=ConfigDefault, config=CONFIG, type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate.")
@click.option("--warmup-steps", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=0),
              help="Linear LR warm-up steps.")
@click.option("--seed", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=0),
              help="Seed of model init, crops and masking.")
@click.option("--checkpoint-every", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=1),
              help="Steps between checkpoints.")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in RUN_DIR.")
@click.option(
    "--deterministic",
    is_flag=True,
    help="Deterministic algorithms only (repeatable runs for regression tests; slower on GPU).",
)
@click.option("--device", cls=ConfigDefault, config=CONFIG, type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where to train.")
@click.option(
    "--verify-shards",
    is_flag=True,
    help="Check each shard's sha256 against its manifest before training (reads all the data once).",
)
@click.option(
    "--val-data",
    "val_data",
    multiple=True,
    type=click.Path(),
    help="Held-out token-shard directory to validate on, a set named by the directory (repeatable).",
)
@click.option("--val-every", type=click.IntRange(min=1),
              help="Steps between validations (and at the end). [default: --checkpoint-every]")
@click.option("--val-tokens", cls=ConfigDefault, config=CONFIG, type=click.IntRange(min=1),
              help="Crop tokens each validation evaluates per set and crop length.")
@click.option(
    "--val-seq-len",
    "val_seq_lens",
    multiple=True,
    type=click.IntRange(min=1),
    help="Crop length to validate at (repeatable; e.g. 1024 and 131072). [default: --seq-len]",
)
@threads_option
def pretrain(data: tuple[str, ...], preset: str | None, out: str, config_path: str | None, max_steps: int,
             seq_len: int, tokens_per_step: int | None, batch_size: int, lr: float, warmup_steps: int,
             seed: int, checkpoint_every: int, resume: bool, deterministic: bool, device: str,
             verify_shards: bool, val_data: tuple[str, ...], val_every: int | None, val_tokens: int,
             val_seq_lens: tuple[int, ...]) -> None:
    """Pretrain a masked-language model on token shards and export it to RUN_DIR/model."""
    from genomamba import api

    # An option left at its default passes None, so that the run YAML's value (or the resumed
    # run's) wins over it: defaults < --config < the command line.
    result = api.pretrain(
        data, out, preset=preset, config_path=config_path, resume=resume,
        max_steps=from_command_line("max_steps", max_steps),
        seq_len=from_command_line("seq_len", seq_len),
        tokens_per_step=tokens_per_step,
        batch_size=from_command_line("batch_size", batch_size),
        lr=from_command_line("lr", lr),
        warmup_steps=from_command_line("warmup_steps", warmup_steps),
        seed=from_command_line("seed", seed),
        checkpoint_every=from_command_line("checkpoint_every", checkpoint_every),
        deterministic=from_command_line("deterministic", deterministic),
        device=from_command_line("device", device),
        verify_shards=from_command_line("verify_shards", verify_shards),
        val_data=val_data or None,
        val_every=val_every,
        val_tokens=from_command_line("val_tokens", val_tokens),
        val_seq_lens=val_seq_lens or None,
        progress=sys.stderr.isatty(),
        log=log,
    )
    if result.status == "interrupted":
        sys.exit(128 + result.signal if result.signal else 1)
