"""Masked-language-model pretraining: one loop, readable top to bottom.

``pretrain(config)`` trains ``build_model(config.preset, **config.model)`` (an ``mlm`` head) on
crops of token shards and writes into ``RUN_DIR`` (``config.out``)::

    run_config.json          the resolved PretrainConfig
    metrics.jsonl            one record per optimiser step (genomamba.train.metrics)
    val_metrics.jsonl        with val_data: one record per validation, set and crop length
                             (genomamba.train.validation)
    metrics.png              loss and masked accuracy curves (validation too), at the end
    checkpoints/step-XXXXXX/ resume state (genomamba.train.state), every checkpoint_every steps,
                             at the end, and on SIGTERM/SIGINT
    model/                   the final model directory (genomamba.model_directory.save_pretrained)

One optimiser step sees ``config.step_tokens`` crop tokens: ``step_tokens // L`` crops of the
current length ``L`` (sequence-length warm-up shortens ``L`` early on), in forward passes
("micro-batches") of at most ``batch_size * seq_len // L`` crops whose gradients accumulate. The
loss of a step is the mean over all its masked bases (each pass's mean is weighted by its share of
the step's masked bases), so accumulation gives the same gradient as one big batch.

Under ``torchrun`` (several processes, :mod:`genomamba.runtime.distributed`) the step's
micro-batches are shared out -- process ``r`` of ``W`` runs micro-batches ``r, r + W, ...``, each
drawn from its own keyed generator (:func:`genomamba.train.data.micro_batch_rng`) -- and the
model is wrapped in DistributedDataParallel. The step's masked-base count is summed over the
processes before any backward pass, so every pass is weighted by its share of the *global* count
(times ``W``, which DDP's gradient averaging divides out): the step's gradient is the gradient of
the mean over all masked bases of the step, as with one process. Only rank 0 writes files; the
decision to stop after a signal is all-reduced so that every rank stops after the same step.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from genomamba.alphabet import PAD_ID
from genomamba.errors import (
    GenomambaError,
    InputDataError,
    UnavailableError,
    is_out_of_memory,
    out_of_memory_detail,
)
from genomamba.io.directories import fresh_directory
from genomamba.model import build_model
from genomamba.runtime.distributed import Distributed, distributed, world_from_env
from genomamba.runtime.log import stderr_log
from genomamba.runtime.precision import autocast_for
from genomamba.train.config import PretrainConfig, read_run_config, write_run_config
from genomamba.train.data import (
    CropSampler,
    manifests_sha256,
    micro_batch_rng,
    open_shards,
    rank_micro_batches,
)
from genomamba.train.masking import IGNORE_INDEX, bert_mask
from genomamba.train.metrics import METRICS_FILE, PLOT_FILE, MetricsWriter, perplexity, plot_metrics
from genomamba.train.optimizer import param_groups
from genomamba.train.run_control import StopFlag, deterministic_mode
from genomamba.train.schedule import lr_factor, seq_len_at
from genomamba.train.state import list_checkpoints, restore_state, rng_states, save_state, seed_everything
from genomamba.train.step import clip_and_step
from genomamba.train.validation import VAL_METRICS_FILE, Validation

__all__ = [
    "PretrainResult",
    "check_crop_length",
    "RunExistsError",
    "pretrain",
]

MODEL_DIR = "model"


class RunExistsError(GenomambaError):
    """RUN_DIR already holds a run and ``--resume`` was not given (exit 1)."""


@dataclass
class PretrainResult:
    run_dir: Path
    step: int  # optimiser steps done
    status: str  # "finished" or "interrupted" (checkpoint written, resume with --resume)
    signal: int | None = None  # the signal that interrupted the run, if any
    model_dir: Path | None = None


def pretrain(
    config: PretrainConfig,
    *,
    resume: bool = False,
    progress: bool = False,
    should_stop: Callable[[int], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> PretrainResult:
    """Run (or resume) a pretraining run; see the module docstring for what is written.

    Under ``torchrun`` every process calls this with the same configuration; the process group is
    created and destroyed here (:func:`genomamba.runtime.distributed.distributed`). RUN_DIR must be
    a directory every process can read (rank 0 writes it; all ranks read the checkpoint on resume).

    Args:
        config: the resolved configuration (``config.out`` is RUN_DIR, ``config.data`` the shards).
        resume: continue from the newest complete checkpoint in RUN_DIR (a fresh start when there
            is none; an InputDataError naming the bad file when every step directory is incomplete).
        progress: show a tqdm bar on stderr (rank 0 only).
        should_stop: called after each step with the step number, on every rank; True on any rank
            checkpoints and returns as a signal would (tests use it to interrupt at an exact step).
        log: receives one-line messages (default: stderr); only rank 0 logs.

    Raises:
        ConfigError: the world size does not divide the micro-batches of a step (raised before
            any process waits for another), or an inconsistent torchrun environment.
        InputDataError: missing, truncated or damaged shard directories, of ``data`` or
            ``val_data`` (a shard's length, dtype, token ids; its sha256 with
            ``config.verify_shards``), no window left to train or validate on,
            ``seq_len`` longer than every window (:func:`check_crop_length`). Raised before RUN_DIR
            is made.
        RunExistsError: RUN_DIR holds checkpoints and ``resume`` is False.
        UnavailableError: ``device='cuda'`` without a GPU, or a local rank without its own GPU;
            the model does not fit in memory (raised before RUN_DIR is made).
        GenomambaError: the checkpoint cannot be resumed (older data order, ranks disagree).

    A run into a new (or empty) RUN_DIR that fails before its first checkpoint removes what it
    wrote there, and RUN_DIR when it made it: there is nothing to resume.
    """
    log = log or stderr_log
    if not config.out:
        raise ValueError("config.out (RUN_DIR) is required")
    config.check_world_size(world_from_env().world_size)
    run_dir = Path(config.out)
    # a step directory copied in part is skipped with a note; --resume with none complete is an error
    checkpoints = list_checkpoints(run_dir, note=log, strict=resume)
    if checkpoints and not resume:
        raise RunExistsError(
            f"{run_dir} already holds a run (step {checkpoints[-1][0]}); pass --resume or another --out"
        )
    # everything about the data is checked before RUN_DIR is made
    shards = open_shards(config.data, verify_checksums=config.verify_shards)
    sampler = CropSampler(shards, config.seed, config.max_n_fraction, config.rc_augment)
    check_crop_length(config, sampler)
    validation = Validation(config) if config.val_data else None  # its crops are drawn once, here
    with distributed(config.device) as world:
        if not world.is_main:
            log, progress = _silent, False

        def resumable() -> bool:  # a run that fails before its first checkpoint leaves no RUN_DIR
            return not world.is_main or bool(list_checkpoints(run_dir))

        with deterministic_mode(config.deterministic, world.device, log), fresh_directory(run_dir, resumable):
            return _pretrain(config, world, sampler, validation, run_dir, resume and bool(checkpoints),
                             progress, should_stop, log)


def check_crop_length(config: PretrainConfig, sampler: CropSampler) -> None:
    """Refuse crops longer than every window of the shards: each would be mostly padding.

    Raises:
        InputDataError: naming the crop length, the longest window and the tokenize window.
    """
    longest = sampler.longest_window
    if config.seq_len <= longest:
        return
    windows = sorted({s.manifest.get("parameters", {}).get("window") for s in sampler.shards} - {None})
    made = f" (tokenized with --window {', '.join(map(str, windows))})" if windows else ""
    raise InputDataError(
        f"{', '.join(config.data)}: crops of --seq-len {config.seq_len} are longer than every window of "
        f"the token shards, the longest of which has {longest:,} bases{made}: crops would be "
        f"{1 - sampler.real_fraction(config.seq_len):.0%} padding on average; use --seq-len {longest} or "
        f"less, or tokenize with --window {config.seq_len} or more"
    )


def _build_model(config: PretrainConfig, device: torch.device) -> torch.nn.Module:
    """The model of the run on ``device``; a model too large for the memory there is an
    UnavailableError (exit 69) naming the preset and overrides, raised before RUN_DIR is made."""
    try:
        return build_model(config.preset, **config.model).to(device)
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        detail, _ = out_of_memory_detail(exc)
        overrides = ", ".join(f"{k}={v}" for k, v in config.model.items())
        raise UnavailableError(
            f"not enough memory on {device} for the model (preset {config.preset}"
            f"{' with ' + overrides if overrides else ''}){': ' + detail if detail else ''}; choose a "
            "smaller preset or smaller model: overrides"
        ) from None


def _pretrain(
    config, world: Distributed, sampler: CropSampler, validation: Validation | None, run_dir: Path, resume,
    progress, should_stop, log,
):
    device = world.device
    seed_everything(config.seed)
    model = _build_model(config, device)
    model.train()
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(config, run_dir)
    optimizer = torch.optim.AdamW(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        betas=tuple(config.betas),
        foreach=device.type == "cuda",
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, config.warmup_steps, config.max_steps, config.min_lr_ratio)
    )
    step = done = 0  # optimiser steps; micro-batches drawn since the start of the run (all ranks)
    if resume:
        step, done = restore_state(list_checkpoints(run_dir)[-1][1], model, optimizer, scheduler, device)
        high, low = world.all_reduce([step, -step], op="max")  # so that no rank waits for another
        if high != -low:
            raise GenomambaError(
                f"ranks found different checkpoints in {run_dir} (steps {int(-low)} to {int(high)}): "
                "RUN_DIR must be on a file system that every process sees"
            )
        log(f"resuming {run_dir} at step {step}")
    net = world.wrap(model)
    real = sampler.real_fraction(config.seq_len)
    log(
        f"pretrain: {model.num_parameters():,} parameters ({config.preset}) on {device}"
        + (f" x {world.world_size} processes ({world.backend})" if world.active else "")
        + f"; {sampler.num_windows} windows, {sampler.num_bases:,} bases; "
        + f"{round(config.step_tokens * real):,} bases/step expected ({config.step_tokens:,} crop tokens"
        + (f", {1 - real:.0%} of them padding)" if real < 1 else ")")
    )
    if real < 0.75:
        log(f"warning: crops of {config.seq_len} bases are {1 - real:.0%} padding on average (many windows "
            "are shorter): padding costs compute and teaches nothing; a smaller --seq-len avoids it")

    def save() -> None:
        if not world.is_main:
            return
        state = {
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "sampler": {"micro_batches": done},
            "rng": rng_states(device),
            "world_size": world.world_size,
            "config": config.to_dict(),
        }
        save_state(run_dir, step, state, keep=config.keep_checkpoints)

    metrics = MetricsWriter(run_dir / METRICS_FILE, truncate_after=step) if world.is_main else None
    val_metrics = (MetricsWriter(run_dir / VAL_METRICS_FILE, truncate_after=step)
                   if world.is_main and validation is not None else None)
    bar = _bar(progress, step, config.max_steps)
    start_time = time.perf_counter()
    status, stop_signal = "finished", None
    try:
        with StopFlag() as flag:
            while step < config.max_steps:
                record, n_micro = _train_step(net, optimizer, sampler, config, step, done, world)
                scheduler.step()
                step += 1
                done += n_micro
                record.update(step=step, elapsed_s=round(time.perf_counter() - start_time, 3))
                asked = should_stop is not None and should_stop(step)
                # every rank must take the same decision, or some would wait forever in a collective
                stop, signum, peak = world.all_reduce(
                    [float(asked or flag.signal is not None), float(flag.signal or 0), _peak_memory(device)],
                    op="max",
                )
                if device.type == "cuda":
                    record["peak_memory_bytes"] = int(peak)
                if metrics is not None:
                    metrics.write(record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.3f}")
                # held-out loss on fixed crops (all ranks take part), before the step's checkpoint
                if validation is not None and validation.due(step):
                    for val_record in validation.run(model, step, world, log):
                        if val_metrics is not None:
                            val_metrics.write(val_record)
                if stop or step % config.checkpoint_every == 0 or step == config.max_steps:
                    save()
                if stop and step < config.max_steps:
                    status, stop_signal = "interrupted", int(signum) or None
                    log(f"interrupted at step {step}; checkpoint written, continue with --resume")
                    break
    finally:
        for writer in (metrics, val_metrics):
            if writer is not None:
                writer.close()
        if bar is not None:
            bar.close()
    model_dir = None
    if world.is_main:
        plot_metrics(run_dir / METRICS_FILE, run_dir / PLOT_FILE, run_dir / VAL_METRICS_FILE)
        if status == "finished":
            from genomamba.model_directory import save_pretrained

            model_dir = save_pretrained(
                model.cpu(),
                run_dir / MODEL_DIR,
                data_manifest_sha256=manifests_sha256(config.data),
                provenance={"pretrain": {"steps": step, "config": config.to_dict()}},
                overwrite=True,
            )
            log(f"finished {step} steps; model written to {model_dir}")
    world.barrier()  # no rank leaves (and no launcher kills rank 0) before rank 0 has written
    if status == "finished" and model_dir is None:
        model_dir = run_dir / MODEL_DIR
    return PretrainResult(run_dir, step, status, stop_signal, model_dir)


def _train_step(net, optimizer, sampler: CropSampler, config: PretrainConfig, step: int, done: int, world):
    """One optimiser step on this rank's share of the micro-batches; returns the step's metrics
    (summed over ranks) and the number of micro-batches the step used (on all ranks together)."""
    tic = time.perf_counter()
    device = world.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    length = seq_len_at(step, config.seq_len, config.seq_len_start, config.seq_len_warmup_steps)
    sizes = config.micro_batch_sizes(length)
    passes = []
    for index, n_crops in rank_micro_batches(done, sizes, world.rank, world.world_size):
        rng = micro_batch_rng(config.seed, index)
        ids = sampler.sample(n_crops, length, rng)
        inputs, labels = bert_mask(ids, rng, config.mask_prob)
        passes.append((ids, inputs, labels, int((labels != IGNORE_INDEX).sum())))
    # the weights need the step's masked-base count over all ranks (not each rank's own mean)
    n_labels = int(world.all_reduce([sum(p[3] for p in passes)])[0])
    optimizer.zero_grad(set_to_none=True)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss x count, correct, real tokens
    for k, (ids, inputs, labels, count) in enumerate(passes):
        real = torch.from_numpy(ids != PAD_ID)
        mask = None if bool(real.all()) else real.to(device)
        labels_t = torch.from_numpy(labels).to(device)
        # gradients are exchanged once per step, after this rank's last pass
        sync = contextlib.nullcontext() if not world.active or k == len(passes) - 1 else net.no_sync()
        with sync:
            with autocast_for(device):
                out = net(torch.from_numpy(inputs).to(device), mask, labels=labels_t)
            # this pass's mean, weighted by its share of the step's masked bases (0 when it has
            # none), times the world size because DDP averages the ranks' gradients
            (out.loss * (count * world.world_size / max(n_labels, 1))).backward()
        selected = labels_t != IGNORE_INDEX
        totals[0] += out.loss.detach().double() * count
        totals[1] += (out.logits.detach().argmax(-1)[selected] == labels_t[selected]).sum()
        totals[2] += float(real.sum())
    lr = optimizer.param_groups[0]["lr"]
    grad_norm, stepped = clip_and_step(net.parameters(), optimizer, config.grad_clip)
    loss_sum, correct, tokens = world.all_reduce(list(totals))
    loss = loss_sum / n_labels if n_labels else 0.0
    seconds = time.perf_counter() - tic
    record = {
        "loss": loss,
        "accuracy": correct / n_labels if n_labels else 0.0,
        "perplexity": perplexity(loss),
        "lr": lr,
        "grad_norm": grad_norm if stepped else None,  # JSON has no inf or NaN
        "skipped_nonfinite_grad": not stepped,
        "masked_tokens": n_labels,
        "tokens": int(tokens),
        "seq_len": length,
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
    }
    return record, len(sizes)


def _peak_memory(device: torch.device) -> float:
    return float(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else 0.0


def _silent(message: str) -> None:
    pass


def _bar(enabled: bool, initial: int, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, unit="step", desc="pretrain", file=sys.stderr, dynamic_ncols=True
    )


def run_dir_config(run_dir: str | Path) -> dict | None:
    """The saved configuration of an existing run (``run_config.json``), or None."""
    return read_run_config(Path(run_dir))
