"""Low-rank adapters (LoRA) on the Mamba layers of a :class:`GenomambaModel`, through PEFT.

``add_lora(model, rank)`` wraps the model's projections in LoRA layers in place (PEFT's
``get_peft_model``): every weight of the model is frozen except the adapters and the head, which
is trained whole (PEFT's ``modules_to_save``: a trainable copy of the head, saved along with the
adapters, so an adapter file carries everything that differs from its base model). The model
object keeps its class and methods and trains as before; the returned ``PeftModel`` is the handle
for :func:`adapter_state` and :func:`merge_lora`. peft is an optional dependency (the ``peft``
extra), imported by these functions only.

Which layers get adapters, and why
----------------------------------
``in_proj`` and ``out_proj`` (and ``in_proj_rev``/``out_proj_rev`` of a bidirectional mixer with
untied projections), nothing else:

* they hold most of a layer's weights (81 % at the small-1k preset, 85 % at long-1m; the two scan
  directions share them), so they are where a low-rank update can change what a layer computes;
* the mixers call them as modules (``self.in_proj(hidden)``, ``self.out_proj(y)``), so the LoRA
  wrapper is on the forward path. tests/model/test_lora.py checks that every adapter runs and
  that changing its weights changes the output.

Left frozen, without adapters:

* ``x_proj`` and ``dt_proj``: :func:`~genomamba.model.mixer.ssm_inputs` reads their ``.weight``
  and stacks the directions' matrices for one batched matmul, so a wrapper around them would
  never run -- training would silently leave them as they are. They are low-rank bottlenecks
  already (d_inner -> dt_rank + 2·d_state and dt_rank = d_model/16 -> d_inner), where a rank-r
  update buys next to nothing;
* ``conv1d``: depthwise, ``d_conv`` (4) taps per channel, also read by weight for the fused
  conv; nothing to factor;
* ``A_log``, ``D``, the norms and the embedding (a vocabulary of ten tokens): vectors or tiny.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

import torch

from genomamba.optional import optional_module

#: modules that get adapters (PEFT matches each name as the last part of a module's path).
LORA_TARGETS = ("in_proj", "out_proj", "in_proj_rev", "out_proj_rev")
#: modules trained whole next to the adapters: the head, pooling (attention) included.
TRAINED_WHOLE = ("head",)
#: PEFT's name of the one adapter a genomamba model carries.
ADAPTER_NAME = "default"


def import_peft():
    """The ``peft`` module, imported on first use, or exit 69 saying how to install it."""
    _bind_installed_kernels()
    return optional_module("peft", "LoRA", "peft")


def _bind_installed_kernels() -> None:
    """Make ``import kernels`` find the installed package of that name, which transformers (imported
    by peft) needs.

    This repository's top-level ``kernels/`` folder is installed as ``genomamba.kernels``, but when
    the root of a checkout is on ``sys.path`` (pytest, ``python -m`` from the root) it also answers
    to the top-level name ``kernels`` and hides the installed package, and transformers then fails
    to import. genomamba never imports its kernels under the top-level name, so binding the
    installed package to that name changes nothing else.
    """
    if "kernels" in sys.modules:
        return
    try:
        init = Path(importlib.metadata.distribution("kernels").locate_file("kernels/__init__.py"))
    except importlib.metadata.PackageNotFoundError:
        return
    found = importlib.util.find_spec("kernels")
    if not init.is_file() or (found is not None and found.origin and Path(found.origin) == init):
        return
    spec = importlib.util.spec_from_file_location("kernels", init)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kernels"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["kernels"]
        raise


def add_lora(model: torch.nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0):
    """Add LoRA adapters to ``model`` in place (see the module docstring for which layers).

    Args:
        model: a :class:`GenomambaModel`; its own weights are frozen, the head stays trainable.
        rank: the adapters' rank r (>= 1).
        alpha: LoRA's alpha; the update is scaled by alpha / r (None: 2 * rank).
        dropout: dropout on the adapters' input.

    Returns:
        The ``peft.PeftModel`` around ``model``.

    Raises:
        UnavailableError: no peft.
    """
    peft = import_peft()
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=2 * rank if alpha is None else alpha,
        lora_dropout=dropout,
        target_modules=list(LORA_TARGETS),
        modules_to_save=list(TRAINED_WHOLE),
        bias="none",
    )
    return peft.get_peft_model(model, config, adapter_name=ADAPTER_NAME)


def adapter_state(peft_model) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(config, tensors)`` of the adapter of :func:`add_lora`, in PEFT's saved form: the
    ``adapter_config.json`` mapping and the tensors of ``adapter_model.safetensors`` by the names
    ``PeftModel.from_pretrained`` reads (LoRA A/B matrices and the head's weights), on CPU."""
    peft = import_peft()
    config = peft_model.peft_config[ADAPTER_NAME].to_dict()
    config = {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}
    config["peft_type"] = str(config["peft_type"].value if hasattr(config["peft_type"], "value")
                              else config["peft_type"])
    config["inference_mode"] = True  # as PEFT saves it: loading gives a model for inference
    tensors = peft.get_peft_model_state_dict(peft_model, adapter_name=ADAPTER_NAME)
    return config, {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def merge_lora(peft_model) -> torch.nn.Module:
    """The plain model with each adapter's update added into its layer's weight and the trained head
    in place of the original: the same architecture and state-dict names as before
    :func:`add_lora`, computing what the adapted model computes (up to rounding)."""
    return peft_model.merge_and_unload()


def load_lora(model: torch.nn.Module, config: dict, tensors: dict[str, torch.Tensor]):
    """Apply a saved adapter (:func:`adapter_state`'s form) to ``model`` in place.

    Returns:
        The ``peft.PeftModel`` around ``model``.

    Raises:
        ValueError: a config PEFT does not accept, adapter tensors that do not fit the model
            (missing, unexpected or mis-shaped; named).
        UnavailableError: no peft.
    """
    peft = import_peft()
    try:
        # base_model_name_or_path names where the adapter was made; PEFT resets it to the model's own
        # (none here) and warns about the change, so it is left out
        settings = {k: v for k, v in config.items() if k != "base_model_name_or_path"}
        lora = peft.PeftConfig.from_peft_type(**{**settings, "inference_mode": True})
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"not a LoRA adapter config PEFT {peft.__version__} accepts: {exc}") from exc
    peft_model = peft.get_peft_model(model, lora, adapter_name=ADAPTER_NAME)
    expected = set(peft.get_peft_model_state_dict(peft_model, adapter_name=ADAPTER_NAME))
    missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or extra:
        raise ValueError(f"the adapter does not fit the model: missing {missing or 'none'}, "
                         f"unexpected {extra or 'none'}")
    try:
        peft.set_peft_model_state_dict(peft_model, tensors, adapter_name=ADAPTER_NAME)
    except RuntimeError as exc:  # load_state_dict's size mismatches
        raise ValueError(f"the adapter does not fit the model: {exc}") from exc
    return peft_model


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts. The frozen original of a head that PEFT trains as a
    copy (``original_module``) is not counted: the exported model holds one head."""
    trainable = total = 0
    for name, param in model.named_parameters():
        if ".original_module." in f".{name}":
            continue
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return trainable, total
