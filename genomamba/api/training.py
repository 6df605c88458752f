"""The training commands as functions: ``pretrain``, ``finetune``, ``evaluate``, ``benchmark``.

Each is what its ``genomamba`` command runs once the options are parsed. A tuning parameter left
at None takes its default from the run configuration (:class:`~genomamba.train.config.PretrainConfig`,
:class:`~genomamba.train.finetune_data.FinetuneConfig`, :class:`~genomamba.suite.runner.BenchmarkConfig`;
for ``pretrain``, a run YAML's value first). Settings that cannot work together raise
:class:`~genomamba.errors.UsageError` before anything is written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from genomamba.api.options import Log, given, model_path, text, usage_errors
from genomamba.errors import UsageError

if TYPE_CHECKING:
    from genomamba.train.finetune import FinetuneResult
    from genomamba.train.pretrain import PretrainResult

PathLike = str | os.PathLike
Seeds = str | Sequence[int]


def pretrain(
    data: Sequence[PathLike],
    out: PathLike,
    *,
    preset: str | None = None,
    config_path: PathLike | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    seq_len: int | None = None,
    tokens_per_step: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    warmup_steps: int | None = None,
    seed: int | None = None,
    checkpoint_every: int | None = None,
    deterministic: bool | None = None,
    device: str | None = None,
    verify_shards: bool | None = None,
    val_data: Sequence[PathLike] | None = None,
    val_every: int | None = None,
    val_tokens: int | None = None,
    val_seq_lens: Sequence[int] | None = None,
    progress: bool = False,
    log: Log | None = None,
) -> PretrainResult:
    """Pretrain a masked-language model on token-shard directories ``data`` into the run
    directory ``out`` (run_config.json, metrics, checkpoints/, model/; see
    :mod:`genomamba.train.pretrain`), or continue it with ``resume``.

    Values come from the :class:`~genomamba.train.config.PretrainConfig` defaults, then the run
    YAML ``config_path``, then these arguments (None: not given). ``val_data``: held-out token-shard
    directories, each a validation set (:mod:`genomamba.train.validation`). Under ``torchrun`` every process
    calls this; only rank 0 takes the lock of ``out`` and writes there.

    Returns:
        A :class:`~genomamba.train.pretrain.PretrainResult`; ``status`` ``interrupted`` (with the
        ``signal``) when SIGTERM/SIGINT stopped the run after a checkpoint.

    Raises:
        ConfigError: a bad run YAML, key or value, or a change a resumed run does not allow (naming
            the file and the key; exit 2).
        UsageError: no preset for a new run; a number of processes that cannot share the steps.
        RunExistsError: ``out`` holds a run and ``resume`` is False.
        InputDataError: missing or damaged shards (``data`` or ``val_data``), ``seq_len`` longer
            than every window.
        UnavailableError: ``device="cuda"`` without a GPU. OutputBusyError: ``out`` is locked.
    """
    from genomamba.io.locks import output_lock
    from genomamba.runtime.distributed import world_from_env
    from genomamba.strict_config import ConfigError
    from genomamba.train.config import RUN_CONFIG, load_yaml, read_run_config, resolve_config
    from genomamba.train.pretrain import pretrain as run_pretrain

    values = {"data": [str(d) for d in data], "out": str(out), "preset": preset, "max_steps": max_steps,
              "seq_len": seq_len, "tokens_per_step": tokens_per_step, "batch_size": batch_size, "lr": lr,
              "warmup_steps": warmup_steps, "seed": seed, "checkpoint_every": checkpoint_every,
              "deterministic": deterministic, "device": device, "verify_shards": verify_shards,
              "val_data": None if val_data is None else [str(d) for d in val_data], "val_every": val_every,
              "val_tokens": val_tokens, "val_seq_lens": None if val_seq_lens is None else list(val_seq_lens)}
    # The whole run config, model overrides included, is checked before anything is written; a
    # ConfigError names the file and the key (exit 2).
    yaml_values = load_yaml(config_path) if config_path else {}
    saved = read_run_config(Path(out)) if resume else None
    if saved is None and preset is None and "preset" not in yaml_values:
        raise UsageError("--preset is required (or preset: in --config) for a new run")
    yaml_source = None if config_path is None else str(config_path)
    config = resolve_config(yaml_values, values, saved, yaml_source=yaml_source,
                            saved_source=str(Path(out) / RUN_CONFIG))
    try:  # under torchrun: fail before any process waits for another
        world = world_from_env()
        config.check_world_size(world.world_size)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    # Rank 0 is the only writer of the run directory: it alone takes the lock.
    with output_lock(config.out, note=log) if world.is_main else contextlib.nullcontext():
        return run_pretrain(config, resume=resume, progress=progress, log=log)


def finetune(
    train: Sequence[str],
    out: PathLike,
    *,
    val: Sequence[str] = (),
    test: Sequence[str] = (),
    genome: PathLike | None = None,
    model: PathLike | None = None,
    preset: str | None = None,
    task: str | None = None,
    positive: str | None = None,
    rc_strategy: str | None = None,
    pooling: str | None = None,
    dropout: float | None = None,
    val_fraction: float | None = None,
    epochs: int | None = None,
    max_steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    warmup_fraction: float | None = None,
    patience: int | None = None,
    metric: str | None = None,
    strand_specific: bool | None = None,
    freeze_backbone: bool = False,
    lora: int | None = None,
    lora_alpha: float | None = None,
    lora_dropout: float | None = None,
    rc_augment: bool | None = None,
    seed: int | None = None,
    seeds: Seeds | None = None,
    device: str | None = None,
    lenient: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    log: Log | None = None,
) -> FinetuneResult | dict:
    """Fine-tune a pretrained ``model`` (a directory, or the name of a shipped model:
    :func:`~genomamba.api.options.model_path`; or a ``preset`` from scratch) on labelled data
    and export the best epoch's model to ``out/model`` with its metrics (see
    :mod:`genomamba.train.finetune`).

    ``train``, ``val``, ``test``: a CSV/TSV/Parquet/BED file or ``LABEL=FASTA`` entries
    (:func:`genomamba.io.labels.read_labelled`; BED needs ``genome``). The other parameters are the
    fields of :class:`~genomamba.train.finetune_data.FinetuneConfig`. ``seeds`` (``"1,2,3"``,
    ``"1-5"`` or a list): one run per seed into ``out/seed-N`` and a summary.

    Returns:
        The :class:`~genomamba.train.finetune.FinetuneResult`; with ``seeds`` the summary dict.

    Raises:
        UsageError: settings that cannot work together (``model`` and ``preset``, an unknown preset
            or metric, a BED input without ``genome``, bad ``seeds``), found before any data is read
            or anything written.
        InputDataError: invalid labelled data (file, line, column) or model directory.
        OutputExistsError: ``out`` is not empty and ``overwrite`` is False.
        UnavailableError: ``device="cuda"`` without a GPU, ``lora`` without peft.
        OutputBusyError: another process is writing ``out``.

    Under ``torchrun`` every process calls this and reads the data; the processes train one
    model on shares of each batch, and only rank 0 takes the lock of ``out`` and writes there.
    ``seeds`` is then a UsageError (launch one run per seed).
    """
    from genomamba.io.locks import output_lock
    from genomamba.runtime.distributed import world_from_env
    from genomamba.strict_config import ConfigError
    from genomamba.train.finetune import finetune as run_finetune
    from genomamba.train.finetune_data import FinetuneConfig, load_data
    from genomamba.train.seeds import finetune_seeds

    model = None if model is None else model_path(model)
    with usage_errors():
        seed_list = _seed_list(seeds)
        config = FinetuneConfig(
            train=list(train), out=str(out), val=list(val), test=list(test), freeze_backbone=freeze_backbone,
            lenient=lenient, overwrite=overwrite,
            **given(genome=text(genome), model=model, preset=preset, task=task, positive=positive,
                    rc_strategy=rc_strategy, pooling=pooling, dropout=dropout, val_fraction=val_fraction,
                    epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                    weight_decay=weight_decay, warmup_fraction=warmup_fraction, patience=patience,
                    metric=metric, strand_specific=strand_specific, lora=lora, lora_alpha=lora_alpha,
                    lora_dropout=lora_dropout, rc_augment=rc_augment, seed=seed, device=device),
        )  # checks every value, the preset name included, before any data is read
    try:  # under torchrun: a bad environment is found before any process waits for another
        world = world_from_env()
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    if seed_list is not None and world.world_size > 1:
        raise UsageError(
            f"--seeds runs one seed after another and is not shared out over {world.world_size} processes: "
            "under torchrun give one --seed and --out per launch, or run --seeds without torchrun"
        )
    # Rank 0 is the only writer of OUT: it alone takes the lock.
    with output_lock(config.out, note=log) if world.is_main else contextlib.nullcontext():
        with usage_errors():  # input combinations that cannot work together
            prepared = load_data(config)
        if seed_list is None:
            return run_finetune(config, prepared=prepared, progress=progress, log=log)
        return finetune_seeds(config, seed_list, prepared=prepared, progress=progress, log=log)


def evaluate(
    model_dir: PathLike,
    data: Sequence[str],
    *,
    genome: PathLike | None = None,
    split: str | None = None,
    out: PathLike | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    lenient: bool = False,
    log: Log | None = None,
) -> dict:
    """Metrics of the fine-tuned model in ``model_dir`` on labelled ``data`` (the inputs of
    :func:`finetune`), labels mapped with the model's own label map; ``split``: only the rows whose
    split column says so. With ``out``: ``metrics.json`` and plots written there.

    Returns:
        The report (what ``metrics.json`` holds: model, data, split, task, labels, metrics).

    Raises:
        InputDataError: invalid data, a label the model was never trained on, a model directory that
            cannot be loaded or has no sequence head.
        UsageError: inputs that cannot work together (BED without ``genome``, FASTA classes mixed
            with a table). UnavailableError: ``device="cuda"`` without a GPU.
        OutputBusyError: another process is writing ``out``.
    """
    from genomamba.io.locks import output_locks
    from genomamba.train.evaluate import evaluate as run_evaluate

    model_dir = model_path(model_dir)
    with usage_errors(), output_locks([out], note=log):
        return run_evaluate(model_dir, list(data), out=out, genome=genome, split=split, lenient=lenient,
                            log=log, **given(batch_size=batch_size, device=device))


def benchmark(
    suites: Sequence[PathLike],
    out: PathLike,
    *,
    methods: Sequence[str] | None = None,
    seeds: Seeds | None = None,
    tasks: Sequence[str] = (),
    model: PathLike | None = None,
    published: PathLike | None = None,
    metric: str | None = None,
    device: str | None = None,
    keep_models: bool = False,
    report_only: bool = False,
    log: Log | None = None,
) -> Path:
    """Run ``methods`` (genomamba fine-tuned or probed, k-mer/one-hot logistic regression, a CNN;
    :mod:`genomamba.suite.methods`) on every task of the ``suites`` folders (or only ``tasks``)
    over ``seeds``, into ``out`` (results.csv, results.md, results.png, runs/). Runs already in
    ``out/results.csv`` are skipped; ``report_only`` runs nothing and rewrites the report.

    Returns:
        ``out``.

    Raises:
        UsageError: an unknown method or option, a method that needs ``model``, bad ``seeds``.
        InputDataError: an invalid suite (the message names file and line).
        UnavailableError: ``device="cuda"`` without a GPU.
    """
    from genomamba.suite.runner import BenchmarkConfig, run_benchmark

    model = None if model is None else model_path(model)
    with usage_errors():
        config = BenchmarkConfig(
            suites=[str(s) for s in suites], out=str(out), tasks=list(tasks) or None, model=model,
            published=text(published), keep_models=keep_models, report_only=report_only,
            **given(methods=None if methods is None else list(methods), seeds=_seed_list(seeds),
                    metric=metric, device=device),
        )
        config.parsed_methods()  # a bad method is a usage error, found before any run
    return run_benchmark(config, log=log)


def _seed_list(seeds: Seeds | None) -> list[int] | None:
    """``seeds`` as a list: text such as ``"1,2,3"`` or ``"1-5"`` parsed, a list kept.

    Raises:
        ValueError: text that is not distinct non-negative integers.
    """
    if seeds is None:
        return None
    if isinstance(seeds, str):
        from genomamba.train.seeds import parse_seeds

        return parse_seeds(seeds)
    return [int(s) for s in seeds]
