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
"""

from __future__ import annotations

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
from genomamba.runtime.device import resolve_device
from genomamba.runtime.log import stderr_log
from genomamba.runtime.precision import autocast_for
from genomamba.runtime.sequence_head import head_labels
from genomamba.tasks.targets import TaskSpec
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


def _build_model(config: FinetuneConfig, spec: TaskSpec, device: torch.device, strand_specific: bool):
    """``(model, the PeftModel around it or None)``: with ``config.lora`` the adapters are added to
    ``model`` in place, so the loop trains ``model`` either way."""
    head = {
        "task": "sequence",
        "problem_type": spec.task,
        "num_labels": spec.num_outputs,
        "pooling": config.pooling,
        "dropout": config.dropout,
        "labels": head_labels(spec),
    }
    # Ph and none share one architecture (Ph only adds conjoining at evaluation), so a strand-specific
    # run turns a Ph model into a plain one; a PS model is RC-invariant in its weights and cannot be.
    rc_strategy = "none" if strand_specific else config.rc_strategy
    if config.model is not None:
        from genomamba.model_directory import from_pretrained, read_config

        stored = read_config(config.model)["architecture"]["rc_strategy"]
        overrides = {"rc_strategy": "none"} if strand_specific and stored != "ps" else {}
        model = from_pretrained(config.model, head=head, **overrides)
    else:
        from genomamba.model import build_model

        model = build_model(config.preset, head=head, **({"rc_strategy": rc_strategy} if rc_strategy else {}))
    if config.freeze_backbone:
        model.backbone.requires_grad_(False)
    peft_model = None
    if config.lora is not None:
        from genomamba.model.lora import add_lora

        peft_model = add_lora(model, config.lora, config.lora_alpha, config.lora_dropout)
    return model.to(device), peft_model


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

    Args:
        prepared: data from :func:`load_data` (read here when None).

    Raises:
        InputDataError: see :func:`load_data`, :func:`grouped_split`; an unloadable model directory.
        OutputExistsError: OUT holds files and ``config.overwrite`` is False.
        UnavailableError: ``device='cuda'`` without a GPU.

    A run into a new (or empty) OUT that fails leaves nothing there (OUT itself is removed when
    the run made it), so the same command can simply be run again.
    """
    log = log or stderr_log
    out = Path(config.out)
    check_out_dir(out, config.overwrite)
    with fresh_directory(out):
        return _finetune(config, out, prepared, progress, log)


def _finetune(
    config: FinetuneConfig, out: Path, prepared: Prepared | None, progress: bool, log
) -> FinetuneResult:
    prepared = prepared or load_data(config)
    spec, train, val, test = prepared.spec, prepared.train, prepared.val, prepared.test
    if val is None and config.val_fraction > 0:
        train_idx, val_idx = grouped_split(train.data.groups, config.val_fraction, config.seed)
        val = Split(train.data.subset(val_idx), train.targets[val_idx])
        train = Split(train.data.subset(train_idx), train.targets[train_idx])
    device = resolve_device(config.device)
    metric = config.metric or DEFAULT_METRIC[spec.task]
    lower_better = metric in LOWER_IS_BETTER

    strand_specific, strand_check = _strand(config, spec, train, val, log)
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.lora is not None and config.model is None:
        log("finetune: warning: LoRA on a model initialised at random (--preset) is unusual: the frozen "
            "backbone stays random and only the adapters and the head learn; no adapter/ is written "
            "(there is no base model to apply it to)")
    model, peft_model = _build_model(config, spec, device, strand_specific)
    trainable = _trainable(model, config)
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
    )
    log(f"finetune: trainable parameters: {trainable['trainable']:,} of {trainable['total']:,} "
        f"({trainable['percent']}%){trainable['what']}")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / CONFIG_JSON, config.to_dict())

    records: list[dict] = []
    best = {"epoch": None, "value": None, "state": None, "val": None}
    bar = _bar(progress, total_steps)
    step, stale, start = 0, 0, time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(n_train)
        loss_sum = 0.0
        seen = skipped = 0
        for first in range(0, n_train, config.batch_size):
            if step >= total_steps:
                break
            index = order[first : first + config.batch_size]
            flips = rng.random(len(index)) < 0.5 if rc_augment else np.zeros(len(index), bool)
            seqs = [
                reverse_complement(train.data.sequences[i]) if f else train.data.sequences[i]
                for i, f in zip(index, flips, strict=True)
            ]
            ids, mask = pad_batch(seqs, device)
            labels = torch.from_numpy(train.targets[index]).to(device)
            with autocast_for(device):
                output = model(ids, mask, labels=labels)
            optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            _, stepped = clip_and_step(model.parameters(), optimizer, config.grad_clip)
            skipped += not stepped
            scheduler.step()
            step += 1
            loss_sum += float(output.loss.detach()) * len(index)
            seen += len(index)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{float(output.loss):.3f}")
        record = {
            "epoch": epoch,
            "step": step,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(seen, 1),
            "skipped_nonfinite_grad_steps": skipped,
        }
        improved = True
        if val is not None:
            val_metrics, _ = score_data(
                model, val.data, val.targets, spec, batch_size=config.eval_batch_size, device=device
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
            model, test.data, test.targets, spec, batch_size=config.eval_batch_size, device=device
        )
        log(f"test: {headline(report['test'])}")
    elif val is not None:
        _, scores = score_data(
            model, val.data, val.targets, spec, batch_size=config.eval_batch_size, device=device
        )
    model_dir = _export(model, config, report, out)
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
    log(f"best epoch {best['epoch']}; model written to {model_dir}")
    return FinetuneResult(out, report, model_dir)


def _trainable(model, config: FinetuneConfig) -> dict:
    """What the run trains: parameter counts, the LoRA settings (None without) and a phrase for the log."""
    from genomamba.model.lora import LORA_TARGETS, trainable_parameters

    trainable, total = trainable_parameters(model)
    lora, what = None, " (the head alone)" if config.freeze_backbone else ""
    if config.lora is not None:
        alpha = config.lora_alpha if config.lora_alpha is not None else 2 * config.lora
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()} & set(LORA_TARGETS)
        lora = {"rank": config.lora, "alpha": alpha, "dropout": config.lora_dropout,
                "target_modules": sorted(names)}
        what = (f": LoRA rank {config.lora} (alpha {alpha:g}, dropout {config.lora_dropout:g}) on "
                f"{', '.join(sorted(names))}, and the head")
    percent = f"{100 * trainable / max(total, 1):.3g}"
    return {"trainable": trainable, "total": total, "percent": percent, "lora": lora, "what": what}


def _strand(config: FinetuneConfig, spec: TaskSpec, train: Split, val: Split | None, log):
    """``(strand_specific, the StrandCheck or None)``: as configured, or tested on the data when
    ``strand_specific`` is None and nothing else about the strands was asked for."""
    if config.strand_specific is not None:
        return config.strand_specific, None
    asked = config.rc_strategy is not None or config.rc_augment is not None
    if asked or val is None or spec.task not in ("binary", "multiclass"):
        return False, None
    from genomamba.train.strand import check_strand

    check = check_strand(
        train.data.sequences, train.targets.astype(np.int64), val.data.sequences,
        val.targets.astype(np.int64), seed=config.seed,
    )
    log(f"finetune: {check.describe()}; "
        + ("no RC augmentation or conjoining (--both-strands to force them)" if check.specific
           else "RC augmentation and conjoining (--strand-specific to turn them off)"))
    return check.specific, check


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


def _bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="finetune", file=sys.stderr, dynamic_ncols=True)
