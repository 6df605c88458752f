"""The DNA language model: config dataclasses and presets, mixers, backbone, heads, RC strategies.

Importing :mod:`genomamba.model.config` does not import torch; the torch-backed names below are
imported on first use.

* :class:`ModelConfig`, :class:`HeadConfig`, :class:`MixerConfig`, :func:`preset` -- configuration;
* :class:`GenomambaModel` -- backbone + head (``forward``, ``predict``, ``embed``, ``loss``);
* :func:`build_model` -- a model from a config or a preset name.
"""

from __future__ import annotations

import importlib

from genomamba.model.config import PRESET_NAMES, ConfigError, HeadConfig, MixerConfig, ModelConfig, preset

_LAZY = {
    "GenomambaModel": "genomamba.model.model",
    "ModelOutput": "genomamba.model.model",
    "Backbone": "genomamba.model.backbone",
}

__all__ = [
    "PRESET_NAMES",
    "ConfigError",
    "HeadConfig",
    "MixerConfig",
    "ModelConfig",
    "preset",
    "build_model",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'genomamba.model' has no attribute {name!r}")


def build_model(config: ModelConfig | str, **overrides):
    """A freshly initialised :class:`GenomambaModel` from a config or a preset name (+ overrides)."""
    from genomamba.model.model import GenomambaModel

    if isinstance(config, str):
        config = preset(config, **overrides)
    elif overrides:
        config = config.replace(**overrides)
    return GenomambaModel(config)
