"""Fine-tuning a sequence-level head (binary, multiclass, multilabel, regression): one readable loop.

``finetune(config)`` trains a pretrained backbone (``config.model``, a model directory) with a new
head, or a preset from scratch (``config.preset``), on labelled sequences
(:mod:`genomamba.io.labels`) and writes into OUT (``config.out``)::

    finetune_config.json   the resolved FinetuneConfig
    metrics.jsonl          one record per epoch: step, lr, train_loss, val_<metric> ...
    metrics.json           task, label map, best epoch, val (and test) metrics with counts
    confusion_matrix.png   of the test split (else validation): binary, multiclass
    roc.png                of the same split: binary, multilabel
    model/                 the best model by the validation metric (genomamba.model_directory); its
                           config.json holds the task (head.problem_type), the output names
                           (head.labels; binary: the positive class) and the whole label map
                           (provenance.finetune.label_map)
    adapter/               with ``lora`` and a pretrained ``model``: the best epoch's LoRA
                           adapters and head alone (genomamba.model_directory.save_adapter)

Data: rows of the training input whose ``split`` column says ``val``/``test`` are the validation
and test sets unless ``--val``/``--test`` files are given; without validation rows a seeded
fraction of the training groups (``group`` column; default one group per row, per chromosome for
BED) is held out, so a group never straddles train and validation. Batches are right-padded with
an attention mask (padding never changes a sequence's result). Optimiser: AdamW (no decay on
1-D and ``_no_weight_decay`` parameters), linear warm-up then cosine decay, gradient clipping.
Reverse complement: Ph (and ``none``) models see each training sequence reverse-complemented with
probability 1/2 (labels are taken to hold for both strands) and are conjoined over both strands at
evaluation; PS models are RC-invariant by construction. ``strand_specific`` is for labels that
belong to the strand as given (splice sites, oriented promoters): no augmentation, no conjoining.
``freeze_backbone`` trains the head alone (a probe of a pretrained model's features); ``lora``
trains low-rank adapters of the Mamba layers with the head, every other weight frozen
(:mod:`genomamba.model.lora`), and exports the model with the adapters merged into its weights, so
model/ is an ordinary model directory. The log and metrics.json give the trainable parameters. Early
stopping: after ``patience`` epochs without improvement of the validation metric. On CPU a run
is deterministic given ``seed`` (split, initialisation, order, strands, dropout).

Several processes (``torchrun --nproc-per-node N genomamba finetune ...``; NCCL with one GPU
each, gloo on CPU): every rank reads the same data and draws the same split, order and strands, so
each step's batch is the same on every rank; rank ``r`` trains on a contiguous share of it
(:func:`genomamba.train.data_parallel.batch_share`), its loss weighted so that DDP's averaged
gradient is the gradient of the batch's mean loss, and clipping and the optimiser step see the
same synchronised gradient on every rank. The train loss is summed over ranks, validation and test
rows are shared out and their scores gathered in row order (:func:`~genomamba.train.evaluate.score_data`),
so the metrics, the early-stopping decision and the exported model are those of one process up to
the order of floating-point sums (with ``dropout`` 0: the ranks' dropout masks differ from one
process's). Only rank 0 checks and writes OUT, logs and shows the bar; the others wait for it
before returning.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genomamba.alphabet import reverse_complement
from genomamba.errors import GenomambaError
from genomamba.io.directories import fresh_directory
from genomamba.runtime.batching import pad_batch
from genomamba.runtime.distributed import Distributed, distributed
from genomamba.runtime.log import stderr_log
from genomamba.runtime.precision import autocast_for
from genomamba.tasks.targets import TaskSpec
from genomamba.train.data_parallel import batch_share, raise_on_every_rank, sigterm_raises
from genomamba.train.evaluate import METRICS_JSON, score_data, write_report
from genomamba.train.finetune_data import (
    DEFAULT_METRIC,
    TASK_METRICS,
    FinetuneConfig,
    Prepared,
    Split,
    grouped_split,
    load_data,
)
from genomamba.train.finetune_model import build_finetune_model, strand_setting, trainable_summary
from genomamba.train.optimizer import param_groups
from genomamba.train.schedule import lr_factor
from genomamba.train.scores import LOWER_IS_BETTER, headline, write_json_atomic, write_jsonl_atomic
from genomamba.train.state import seed_everything
from genomamba.train.step import clip_and_step

CONFIG_JSON = "finetune_config.json"
EPOCHS_JSONL = "metrics.jsonl"
MODEL_DIR = "model"
ADAPTER_DIR = "adapter"


class OutputExistsError(GenomambaError):
    """OUT already holds files and ``overwrite`` was not given (exit 1)."""


@dataclass
class FinetuneResult:
    out: Path
    report: dict  # what metrics.json holds
    model_dir: Path


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse (OutputExistsError) an OUT that is a file, or a non-empty directory without ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{out} is not empty; pass --overwrite to replace its results, or another --out"
        )


def finetune(
    config: FinetuneConfig,
    *,
    prepared: Prepared | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> FinetuneResult:
    """Fine-tune and export the best model; see the module docstring for what is written.

    Under ``torchrun`` every process calls this with the same configuration and data; the process
    group is created and destroyed here (:func:`genomamba.runtime.distributed.distributed`) unless
    the caller made it. Rank 0 alone checks and writes OUT and logs; every rank returns the same
    result once OUT is complete.

    Args:
        prepared: data from :func:`load_data` (read here when None).

    Raises:
        InputDataError: see :func:`load_data`, :func:`grouped_split`; an unloadable model directory.
        OutputExistsError: OUT holds files and ``config.overwrite`` is False (on every rank).
        UnavailableError: ``device='cuda'`` without a GPU, or a local rank without its own GPU.

    A run into a new (or empty) OUT that fails leaves nothing there (OUT itself is removed when
    the run made it), so the same command can simply be run again; under ``torchrun`` also when
    another rank failed and the launcher stopped rank 0 with SIGTERM.
    """
    log = log or stderr_log
    out = Path(config.out)
    with distributed(config.device) as world:
        if not world.is_main:
            log, progress = _silent, False
        raise_on_every_rank(world, lambda: check_out_dir(out, config.overwrite))
        writing = fresh_directory(out) if world.is_main else contextlib.nullcontext()
        with sigterm_raises(world.active), writing:
            return _finetune(config, world, out, prepared, progress, log)


def _finetune(
    config: FinetuneConfig, world: Distributed, out: Path, prepared: Prepared | None, progress: bool, log
) -> FinetuneResult:
    # Everything up to world.wrap is the same on every rank (same inputs, same seed): an error in
    # the data or the configuration is raised by every rank before any of them waits for another.
    prepared = prepared or load_data(config)
    spec, train, val, test = prepared.spec, prepared.train, prepared.val, prepared.test
    if val is None and config.val_fraction > 0:
        train_idx, val_idx = grouped_split(train.data.groups, config.val_fraction, config.seed)
        val = Split(train.data.subset(val_idx), train.targets[val_idx])
        train = Split(train.data.subset(train_idx), train.targets[train_idx])
    device = world.device
    metric = config.metric or DEFAULT_METRIC[spec.task]
    lower_better = metric in LOWER_IS_BETTER

    strand_specific, strand_check = strand_setting(config, spec, train, val, log)
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.lora is not None and config.model is None:
        log("finetune: warning: LoRA on a model initialised at random (--preset) is unusual: the frozen "
            "backbone stays random and only the adapters and the head learn; no adapter/ is written "
            "(there is no base model to apply it to)")
    model, peft_model = build_finetune_model(config, spec, device, strand_specific)
    trainable = trainable_summary(model, config)
    if strand_specific and model.config.rc_strategy == "ps":
        log("finetune: the labels look strand-specific, but the model is PS (RC-invariant by construction); "
            "fine-tune a ph or none model to let it tell the strands apart")
    rc_augment = config.rc_augment
    if rc_augment is None:
        rc_augment = not strand_specific and model.config.rc_strategy != "ps"
    n_train = len(train.data)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    total_steps = min(config.max_steps or math.inf, config.epochs * steps_per_epoch)
    warmup = int(config.warmup_fraction * total_steps)
    optimizer = torch.optim.AdamW(
        param_groups(model, config.weight_decay), lr=config.lr, foreach=device.type == "cuda"
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup, total_steps, config.min_lr_ratio)
    )
    source = f"model {config.model}" if config.model else f"preset {config.preset}"
    log(
        f"finetune: {spec.task} ({', '.join(spec.labels) if spec.labels else 'values'}) from {source}, "
        f"rc {model.config.rc_strategy}{' + RC augmentation' if rc_augment else ''}; "
        f"{n_train} train, {len(val.data) if val else 0} val, {len(test.data) if test else 0} test; "
        f"{total_steps} steps on {device}"
        + (f" x {world.world_size} processes ({world.backend}), batches shared out" if world.active else "")
    )
    log(f"finetune: trainable parameters: {trainable['trainable']:,} of {trainable['total']:,} "
        f"({trainable['percent']}%){trainable['what']}")
    net = world.wrap(model)  # DDP: the model's parameters, gradients averaged over the ranks
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / CONFIG_JSON, config.to_dict())

    records: list[dict] = []
    best = {"epoch": None, "value": None, "state": None, "val": None}
    bar = _bar(progress, total_steps)
    step, stale, start = 0, 0, time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        net.train()
        order = rng.permutation(n_train)
        loss_sum = 0.0
        seen = skipped = 0
        for first in range(0, n_train, config.batch_size):
            if step >= total_steps:
                break
            # the batch and its strands are drawn alike on every rank; each trains on its share
            index = order[first : first + config.batch_size]
            flips = rng.random(len(index)) < 0.5 if rc_augment else np.zeros(len(index), bool)
            share = batch_share(len(index), world.rank, world.world_size)
            seqs = [
                reverse_complement(train.data.sequences[i]) if f else train.data.sequences[i]
                for i, f in zip(index[share.rows], flips[share.rows], strict=True)
            ]
            ids, mask = pad_batch(seqs, device)
            labels = torch.from_numpy(train.targets[index[share.rows]]).to(device)
            # forward and backward: DDP averages the weighted gradients of the ranks' shares
            with autocast_for(device):
                output = net(ids, mask, labels=labels)
            optimizer.zero_grad(set_to_none=True)
            (output.loss * share.weight).backward()
            # clip and step on the synchronised gradient: the same update on every rank
            _, stepped = clip_and_step(model.parameters(), optimizer, config.grad_clip)
            skipped += not stepped
            scheduler.step()
            step += 1
            # the batch's loss: the shares' sums over ranks (float64, as one process sums them)
            batch_sum = world.all_reduce([float(output.loss.detach()) * share.count])[0]
            loss_sum += batch_sum
            seen += len(index)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{batch_sum / len(index):.3f}")
        record = {
            "epoch": epoch,
            "step": step,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(seen, 1),
            "skipped_nonfinite_grad_steps": skipped,
        }
        improved = True
        if val is not None:
            val_metrics, _ = score_data(  # every rank scores its share and computes the same metrics
                model, val.data, val.targets, spec, world=world, batch_size=config.eval_batch_size,
                device=device,
            )
            record.update({f"val_{k}": v for k, v in val_metrics.items() if k in TASK_METRICS[spec.task]})
            value = val_metrics[metric]
            if value is None:
                log(f"epoch {epoch}: validation {metric} is undefined (one class only?); not compared")
            improved = best["epoch"] is None or _better(value, val_metrics, best, lower_better)
            if improved:
                best.update(value=value, val=val_metrics)
        if improved:
            best.update(epoch=epoch, state={k: v.detach().clone() for k, v in model.state_dict().items()})
            stale = 0
        else:
            stale += 1
        record.update(best=improved, elapsed_s=round(time.perf_counter() - start, 3))
        records.append(record)
        if world.is_main:
            write_jsonl_atomic(out / EPOCHS_JSONL, records)
        shown = f", val {metric} {record.get('val_' + metric)}" if val is not None else ""
        log(f"epoch {epoch}: train loss {record['train_loss']:.4f}{shown}{' (best)' if improved else ''}")
        if step >= total_steps or (val is not None and config.patience and stale >= config.patience):
            break
    if bar is not None:
        bar.close()

    model.load_state_dict(best["state"])
    adapter = None
    if peft_model is not None:
        from genomamba.model.lora import adapter_state, merge_lora

        adapter = adapter_state(peft_model)  # before merging: the adapters alone
        model = merge_lora(peft_model)  # the plain model that is scored and exported
    report = {
        "task": spec.task,
        "labels": list(spec.labels) if spec.labels else None,
        "source": {"model": config.model} if config.model else {"preset": config.preset},
        "rc_strategy": model.config.rc_strategy,
        "rc_augment": rc_augment,
        "strand_specific": strand_specific,
        "strand_check": strand_check.to_dict() if strand_check else None,
        "freeze_backbone": config.freeze_backbone,
        "lora": trainable["lora"],
        "trainable_parameters": {k: trainable[k] for k in ("trainable", "total")},
        "seed": config.seed,
        "epochs_run": len(records),
        "steps": step,
        "best_epoch": best["epoch"],
        "early_stopping": {"metric": metric, "value": best["value"], "patience": config.patience},
        "n": {"train": n_train, "val": len(val.data) if val else 0, "test": len(test.data) if test else 0},
        "val": best["val"],
    }
    shown_split, shown = ("val", val) if test is None else ("test", test)
    scores = None
    if test is not None:
        report["test"], scores = score_data(
            model, test.data, test.targets, spec, world=world, batch_size=config.eval_batch_size,
            device=device,
        )
        log(f"test: {headline(report['test'])}")
    elif val is not None:
        _, scores = score_data(
            model, val.data, val.targets, spec, world=world, batch_size=config.eval_batch_size, device=device
        )
    if world.is_main:
        _write(model, config, report, out, adapter, shown, shown_split, scores, spec, source)
        log(f"best epoch {best['epoch']}; model written to {out / MODEL_DIR}")
    world.barrier()  # no rank returns (and no launcher stops rank 0) before OUT is complete
    return FinetuneResult(out, report, out / MODEL_DIR)


def _write(model, config: FinetuneConfig, report: dict, out: Path, adapter, shown: Split | None,
           shown_split: str, scores, spec: TaskSpec, source: str) -> None:
    """model/, adapter/ (LoRA), metrics.json and the plots of ``shown`` (test, else validation)."""
    _export(model, config, report, out)
    if adapter is not None and config.model is not None:
        from genomamba.model_directory import save_adapter

        save_adapter(out / ADAPTER_DIR, *adapter, architecture=model.config.to_dict(),
                     base_model=config.model, overwrite=True)
    if shown is not None:
        write_report(
            out, spec, shown.targets, scores, report[shown_split], report, f"{shown_split} ({source})"
        )
    else:
        write_json_atomic(out / METRICS_JSON, report)


def _better(value: float | None, val_metrics: dict, best: dict, lower_better: bool) -> bool:
    """Whether this epoch beats the best so far: a better metric, or the same metric and a lower
    validation loss. The tie-break matters early on: a classifier still predicting the majority
    class scores MCC 0 epoch after epoch while its loss falls, and without it patience would run
    out before it ever left that plateau."""
    if value is None:
        return False
    if best["value"] is None:
        return True
    if value != best["value"]:
        return value < best["value"] if lower_better else value > best["value"]
    loss, best_loss = val_metrics.get("loss"), (best["val"] or {}).get("loss")
    return loss is not None and best_loss is not None and loss < best_loss


def _export(model, config: FinetuneConfig, report: dict, out: Path) -> Path:
    from genomamba.io.compression import sha256_file
    from genomamba.io.labels import parse_input
    from genomamba.model_directory import save_pretrained

    files = [parse_input(v)[1] for v in config.train]
    provenance = {
        "finetune": {
            "config": config.to_dict(),
            "train_sha256": {f: sha256_file(f) for f in files},
            "label_map": report["labels"],
            "best_epoch": report["best_epoch"],
            "early_stopping": report["early_stopping"],
        }
    }
    return save_pretrained(model.cpu(), out / MODEL_DIR, provenance=provenance, overwrite=True)


def _silent(message: str) -> None:
    pass


def _bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="finetune", file=sys.stderr, dynamic_ncols=True)
