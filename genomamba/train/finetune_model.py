"""What a fine-tuning run trains (:mod:`genomamba.train.finetune`): the model with its new head,
which of its parameters learn, and whether the labels belong to one strand.

* :func:`build_finetune_model` -- a pretrained backbone (``config.model``) or a preset from
  scratch, with a sequence head for the task; the backbone frozen (``freeze_backbone``) or LoRA
  adapters added (``lora``);
* :func:`trainable_summary` -- trainable and total parameter counts and the LoRA settings, for the
  log and ``metrics.json``;
* :func:`strand_setting` -- ``strand_specific`` as configured, or tested on the data
  (:func:`genomamba.train.strand.check_strand`).
"""

from __future__ import annotations

import numpy as np
import torch

from genomamba.runtime.sequence_head import head_labels
from genomamba.tasks.targets import TaskSpec
from genomamba.train.finetune_data import FinetuneConfig, Split


def build_finetune_model(
    config: FinetuneConfig, spec: TaskSpec, device: torch.device, strand_specific: bool
):
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


def trainable_summary(model, config: FinetuneConfig) -> dict:
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


def strand_setting(config: FinetuneConfig, spec: TaskSpec, train: Split, val: Split | None, log):
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

