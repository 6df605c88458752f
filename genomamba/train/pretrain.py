"""Masked-language-model pretraining: one loop, readable top to bottom.

``pretrain(config)`` trains ``build_model(config.preset, **config.model)`` (an ``mlm`` head) on
crops of token shards and writes into ``RUN_DIR`` (``config.out``)::

    run_config.json          the resolved PretrainConfig
    metrics.jsonl            one record per optimiser step (genomamba.train.metrics)
    metrics.png              loss and masked accuracy curves, at the end
    checkpoints/step-XXXXXX/ resume state (genomamba.train.state), every checkpoint_every steps,
                             at the end, and on SIGTERM/SIGINT
    model/                   the final model directory (genomamba.checkpoint.save_pretrained)

One optimiser step sees ``config.step_tokens`` crop tokens: ``step_tokens // L`` crops of the
current length ``L`` (sequence-length warm-up shortens ``L`` early on), in forward passes of at
most ``batch_size * seq_len // L`` crops whose gradients accumulate. The loss of a step is the
mean over all its masked bases (each pass's mean is weighted by its share of the step's masked
bases), so accumulation gives the same gradient as one big batch.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genomamba.alphabet import PAD_ID
from genomamba.errors import GenomambaError, UnavailableError
from genomamba.model import build_model
from genomamba.train.config import PretrainConfig, read_run_config, write_run_config
from genomamba.train.data import CropSampler, manifests_sha256, open_shards
from genomamba.train.masking import IGNORE_INDEX, bert_mask
from genomamba.train.metrics import METRICS_FILE, PLOT_FILE, MetricsWriter, perplexity, plot_metrics
from genomamba.train.schedule import lr_factor, seq_len_at
from genomamba.train.state import list_checkpoints, load_state, rng_states, save_state, set_rng_states

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


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU. Raises :class:`UnavailableError` for cuda without one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UnavailableError("--device cuda: no CUDA device is available")
    return torch.device(name)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on matrices only; none on biases, norms, embeddings' 1-D params and the
    parameters the model marks ``_no_weight_decay`` (A_log, D, dt bias)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or getattr(param, "_no_weight_decay", False):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _StopFlag:
    """SIGTERM/SIGINT set a flag that the loop checks after each step (never mid-step)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _deterministic(enabled: bool):
    previous = torch.are_deterministic_algorithms_enabled()
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def pretrain(
    config: PretrainConfig,
    *,
    resume: bool = False,
    progress: bool = False,
    should_stop: Callable[[int], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> PretrainResult:
    """Run (or resume) a pretraining run; see the module docstring for what is written.

    Args:
        config: the resolved configuration (``config.out`` is RUN_DIR, ``config.data`` the shards).
        resume: continue from the newest checkpoint in RUN_DIR (a fresh start when there is none).
        progress: show a tqdm bar on stderr.
        should_stop: called after each step with the step number; True checkpoints and returns
            as a signal would (tests use it to interrupt at an exact step).
        log: receives one-line messages (default: stderr).

    Raises:
        InputDataError: missing or unreadable shard directories, no window left to train on.
        RunExistsError: RUN_DIR holds checkpoints and ``resume`` is False.
        UnavailableError: ``device='cuda'`` without a GPU.
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    if not config.out:
        raise ValueError("config.out (RUN_DIR) is required")
    run_dir = Path(config.out)
    checkpoints = list_checkpoints(run_dir)
    if checkpoints and not resume:
        raise RunExistsError(
            f"{run_dir} already holds a run (step {checkpoints[-1][0]}); pass --resume or another --out"
        )
    shards = open_shards(config.data)
    device = resolve_device(config.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_config(config, run_dir)

    with _deterministic(config.deterministic):
        seed_everything(config.seed)
        model = build_model(config.preset, **config.model)
        if model.config.head.task != "mlm":
            raise ValueError(
                f"pretraining needs an mlm head, the model config has {model.config.head.task!r}"
            )
        model.to(device).train()
        optimizer = torch.optim.AdamW(
            param_groups(model, config.weight_decay),
            lr=config.lr,
            betas=tuple(config.betas),
            foreach=device.type == "cuda",
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, config.warmup_steps, config.max_steps, config.min_lr_ratio)
        )
        sampler = CropSampler(shards, config.seed, config.max_n_fraction, config.rc_augment)
        step = 0
        if resume and checkpoints:
            state = load_state(checkpoints[-1][1])
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            sampler.load_state_dict(state["sampler"])
            set_rng_states(state["rng"])
            step = int(state["step"])
            log(f"resuming {run_dir} at step {step}")
        log(
            f"pretrain: {model.num_parameters():,} parameters ({config.preset}) on {device}; "
            f"{sampler.num_windows} windows, {sampler.num_bases:,} bases; {config.step_tokens:,} tokens/step"
        )

        def save() -> None:
            state = {
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "sampler": sampler.state_dict(),
                "rng": rng_states(),
                "config": config.to_dict(),
            }
            save_state(run_dir, step, state, keep=config.keep_checkpoints)

        metrics = MetricsWriter(run_dir / METRICS_FILE, truncate_after=step)
        bar = _bar(progress, step, config.max_steps)
        start_time = time.perf_counter()
        status, stop_signal = "finished", None
        try:
            with _StopFlag() as flag:
                while step < config.max_steps:
                    record = _train_step(model, optimizer, sampler, config, step, device)
                    scheduler.step()
                    step += 1
                    record.update(step=step, elapsed_s=round(time.perf_counter() - start_time, 3))
                    metrics.write(record)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.3f}")
                    asked = should_stop is not None and should_stop(step)
                    stop = asked or flag.signal is not None
                    if stop or step % config.checkpoint_every == 0 or step == config.max_steps:
                        save()
                    if stop and step < config.max_steps:
                        status, stop_signal = "interrupted", flag.signal
                        log(f"interrupted at step {step}; checkpoint written, continue with --resume")
                        break
        finally:
            metrics.close()
            if bar is not None:
                bar.close()
        plot_metrics(run_dir / METRICS_FILE, run_dir / PLOT_FILE)
        if status == "interrupted":
            return PretrainResult(run_dir, step, status, stop_signal)
        from genomamba.checkpoint import save_pretrained

        model_dir = save_pretrained(
            model.cpu(),
            run_dir / MODEL_DIR,
            data_manifest_sha256=manifests_sha256(config.data),
            provenance={"pretrain": {"steps": step, "config": config.to_dict()}},
            overwrite=True,
        )
        log(f"finished {step} steps; model written to {model_dir}")
        return PretrainResult(run_dir, step, status, None, model_dir)


def _train_step(model, optimizer, sampler: CropSampler, config: PretrainConfig, step: int, device) -> dict:
    """One optimiser step (sampling, masking, accumulated forward/backward, clip, update); its metrics."""
    tic = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    length = seq_len_at(step, config.seq_len, config.seq_len_start, config.seq_len_warmup_steps)
    n_crops = max(1, config.step_tokens // length)
    per_pass = max(1, config.batch_size * config.seq_len // length)
    passes = []
    for first in range(0, n_crops, per_pass):
        ids = sampler.sample(min(per_pass, n_crops - first), length)
        inputs, labels = bert_mask(ids, sampler.rng, config.mask_prob)
        passes.append((ids, inputs, labels))
    n_labels = sum(int((labels != IGNORE_INDEX).sum()) for _, _, labels in passes)
    optimizer.zero_grad(set_to_none=True)
    loss_sum = correct = tokens = 0.0
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    for ids, inputs, labels in passes:
        real = torch.from_numpy(ids != PAD_ID)
        mask = None if bool(real.all()) else real.to(device)
        labels_t = torch.from_numpy(labels).to(device)
        with autocast:
            out = model(torch.from_numpy(inputs).to(device), mask, labels=labels_t)
        count = int((labels != IGNORE_INDEX).sum())
        # weight this pass's mean by its share of the step's masked bases (0 when it has none)
        (out.loss * (count / max(n_labels, 1))).backward()
        loss_sum += float(out.loss.detach()) * count
        selected = labels_t != IGNORE_INDEX
        correct += float((out.logits.detach().argmax(-1)[selected] == labels_t[selected]).sum())
        tokens += float(real.sum())
    grad_norm = None
    if config.grad_clip > 0:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    loss = loss_sum / n_labels if n_labels else 0.0
    seconds = time.perf_counter() - tic
    record = {
        "loss": loss,
        "accuracy": correct / n_labels if n_labels else 0.0,
        "perplexity": perplexity(loss),
        "lr": lr,
        "grad_norm": grad_norm,
        "masked_tokens": n_labels,
        "tokens": int(tokens),
        "seq_len": length,
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
    }
    if device.type == "cuda":
        record["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return record


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
