"""The methods a benchmark compares, named by short strings, and how each one runs on a task.

Method names (``genomamba benchmark --method``; the name is also the ``method`` column):

* ``kmer-lr`` -- logistic regression on k-mer frequencies, k = 1..5 (:mod:`.baselines`);
* ``onehot-lr`` -- logistic regression on the position-wise one-hot sequence (fixed-length
  tasks only);
* ``cnn`` -- the Genomic Benchmarks CNN, trained with early stopping (:mod:`.cnn`);
* ``finetune:PRESET`` -- genomamba fine-tuned from scratch from a preset (``finetune:small-1k``);
* ``finetune:model`` -- genomamba fine-tuned from the pretrained ``--model``;
* ``probe`` -- embeddings of the frozen ``--model`` + logistic regression.

Fine-tuning and probe methods take options after commas, each a field of
:class:`~genomamba.train.finetune_data.FinetuneConfig` (``finetune:small-1k,pooling=attention,
strand_specific=true``) or, for ``probe``, ``pooling=`` (any fixed pooling) and ``layer=`` (1..n_layer:
the layer whose output is embedded; the last layer is often not the best for a probe). So every variant
of a recipe is a method with its own rows, run on the same splits and seeds as the baselines.

Every method returns the test metrics of :func:`genomamba.train.scores.compute_metrics`.
"""

from __future__ import annotations

import dataclasses
import shutil
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genomamba.suite.tasks import TaskData
from genomamba.train.scores import compute_metrics

BASELINES = ("kmer-lr", "onehot-lr", "cnn")
DEFAULT_METHODS = ("kmer-lr", "onehot-lr", "cnn", "finetune:small-1k")
FROM_MODEL = "model"  # finetune:model = start from --model
# set by the benchmark for every run, so not options of a method
_RUN_FIELDS = {"train", "val", "test", "out", "model", "preset", "genome", "seed", "device", "overwrite"}


class MethodError(ValueError):
    """A method name that cannot be run (usage error): unknown, bad option, needs --model."""


@dataclass(frozen=True)
class Method:
    """A parsed method name: ``kind`` (a baseline name, ``finetune`` or ``probe``), ``source``
    (finetune: a preset name or ``model``) and ``options`` (typed values)."""

    name: str
    kind: str
    source: str | None = None
    options: dict = field(default_factory=dict, hash=False)

    @property
    def needs_model(self) -> bool:
        return self.kind == "probe" or self.source == FROM_MODEL


def parse_method(text: str) -> Method:
    """``Method`` of a name such as ``finetune:small-1k,pooling=attention``.

    Raises:
        MethodError: an unknown method, preset or option, or a value of the wrong type.
    """
    head, *pairs = [part.strip() for part in text.strip().split(",")]
    kind, _, source = head.partition(":")
    if kind in BASELINES and not source and not pairs:
        return Method(head, kind)
    if kind == "finetune" and source:
        if source != FROM_MODEL:
            from genomamba.model.config import PRESET_NAMES

            if source not in PRESET_NAMES:
                raise MethodError(f"{text}: unknown preset {source!r}; presets: {', '.join(PRESET_NAMES)}")
        options = _options(text, pairs, _finetune_fields())
        _check_finetune_options(text, source, options)
        return Method(text.strip(), kind, source, options)
    if kind == "probe" and not source:
        options = _options(text, pairs, {"pooling": "str", "layer": "int"})
        _check_pooling(text, options.get("pooling", "mean"))
        return Method(text.strip(), kind, None, options)
    raise MethodError(
        f"unknown method {text!r}; use {', '.join(BASELINES)}, finetune:PRESET, finetune:model or probe "
        "(options after commas, e.g. finetune:small-1k,pooling=attention)"
    )


def _finetune_fields() -> dict[str, str]:
    from genomamba.train.finetune_data import FinetuneConfig

    hints = typing.get_type_hints(FinetuneConfig)
    fields = dataclasses.fields(FinetuneConfig)
    return {f.name: _type_name(hints[f.name]) for f in fields if f.name not in _RUN_FIELDS}


def _type_name(hint) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    return getattr(base, "__name__", str(base))


def _options(text: str, pairs: list[str], fields: dict[str, str]) -> dict:
    from genomamba.strict_config import ConfigError, reject_unknown

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise MethodError(f"{text}: {pair!r} is not KEY=VALUE (keys: {', '.join(sorted(fields))})")
        try:
            reject_unknown({key: value}, sorted(fields))
        except ConfigError as exc:
            raise MethodError(f"{text}: {exc}") from None
        options[key] = _convert(text, key, value.strip(), fields[key])
    return options


def _convert(text: str, key: str, value: str, kind: str):
    try:
        if kind == "bool":
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError as exc:
        raise MethodError(f"{text}: {key}={value!r} is not a {kind}") from exc
    return value


def _check_finetune_options(text: str, source: str, options: dict) -> None:
    from genomamba.strict_config import ConfigError
    from genomamba.train.finetune_data import FinetuneConfig

    start = {"model": "MODEL"} if source == FROM_MODEL else {"preset": source}
    try:
        FinetuneConfig(train=["-"], out="-", **start, **options)
    except ConfigError as exc:
        raise MethodError(f"{text}: {exc}") from exc


def _check_pooling(text: str, pooling: str) -> None:
    from genomamba.model.config import FIXED_POOLINGS

    if pooling not in FIXED_POOLINGS:
        raise MethodError(f"{text}: probe pooling must be one of {', '.join(FIXED_POOLINGS)}")


# -- running ------------------------------------------------------------------------------------
@dataclass
class RunContext:
    """What every run of a benchmark shares."""

    workdir: Path  # this run's own folder (fine-tuning writes its logs there)
    device: str = "auto"
    model: str | None = None  # --model
    keep_models: bool = False
    log: Callable[[str], None] = print


def run_method(method: Method, data: TaskData, seed: int, context: RunContext) -> dict:
    """Train ``method`` on ``data``'s train split (validating on dev, else on part of train) and
    return its test metrics."""
    if method.kind == "finetune":
        return _finetune(method, data, seed, context)
    if method.kind == "probe":
        probs = _probe(method, data, seed, context)
    elif method.kind == "kmer-lr":
        from genomamba.suite.baselines import fit_kmer_lr

        probs = fit_kmer_lr(data.train.sequences, data.y_train, data.test.sequences, seed=seed)
    elif method.kind == "onehot-lr":
        from genomamba.suite.baselines import fit_onehot_lr

        probs = fit_onehot_lr(data.train.sequences, data.y_train, data.test.sequences, seed=seed)
    else:
        from genomamba.suite.cnn import CNNConfig, fit_cnn

        dev = data.dev.sequences if data.dev is not None else None
        probs = fit_cnn(
            data.train.sequences, data.y_train, data.test.sequences, seed=seed, val_seqs=dev,
            val_y=data.y_dev, config=CNNConfig(device=context.device),
        )
    return test_metrics(data, probs)


def test_metrics(data: TaskData, probs: np.ndarray) -> dict:
    """Metrics of class probabilities ``(n_test, k)`` on the test split."""
    scores = probs[:, 1] if data.spec.task == "binary" else probs
    return compute_metrics(data.spec.task, data.spec.labels, data.y_test, scores)


def _finetune(method: Method, data: TaskData, seed: int, context: RunContext) -> dict:
    from genomamba.train.finetune import MODEL_DIR, finetune
    from genomamba.train.finetune_data import FinetuneConfig, Prepared, Split

    start = {"model": context.model} if method.source == FROM_MODEL else {"preset": method.source}
    config = FinetuneConfig(
        train=[str(data.task.train)],
        val=[str(data.task.dev)] if data.task.dev else [],
        test=[str(data.task.test)],
        out=str(context.workdir),
        seed=seed,
        device=context.device,
        overwrite=True,
        **start,
        **method.options,
    )
    # the splits are already read and checked; finetune's own targets are float 0/1 for binary tasks
    as_targets = (lambda y: y.astype(np.float32)) if data.spec.task == "binary" else (lambda y: y)
    prepared = Prepared(
        data.spec,
        Split(data.train, as_targets(data.y_train)),
        Split(data.dev, as_targets(data.y_dev)) if data.dev is not None else None,
        Split(data.test, as_targets(data.y_test)),
    )
    result = finetune(config, prepared=prepared, log=context.log)
    if not context.keep_models:
        shutil.rmtree(context.workdir / MODEL_DIR, ignore_errors=True)
    return result.report["test"]


def _probe(method: Method, data: TaskData, seed: int, context: RunContext) -> np.ndarray:
    from genomamba.infer.runner import load_model
    from genomamba.infer.sequences import embed_sequences
    from genomamba.suite.baselines import fit_logistic

    pooling, layer = method.options.get("pooling", "mean"), method.options.get("layer")
    model, device = load_model(context.model, context.device)
    features = [
        embed_sequences(model, split.sequences, device, pooling=pooling, layer=layer)
        for split in (data.train, data.test)
    ]
    return fit_logistic(features[0], data.y_train, features[1], seed=seed)
