"""Benchmark suites: folders of labelled classification tasks, found and checked before any run.

A suite is a folder of task folders. A task folder holds ``train.csv`` and ``test.csv`` and
optionally ``dev.csv`` (the validation split; without it each method holds out part of train),
all ``sequence,label`` tables as :mod:`genomamba.io.labels` reads them (TSV and compressed files
too). Published numbers to show beside the results come from a ``published.yaml``: in the task
folder (``{metric: mcc, value: 72.0, source: ...}``), in the suite folder or given on the
command line (``{TASK: {metric, value, source}}``); values are on the scale the report prints
(MCC, F1, accuracy and AUROC x 100).

numpy only; no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genomamba.errors import InputDataError
from genomamba.io.labels import LabelledData, read_labelled
from genomamba.tasks.targets import TaskSpec, encode_targets, infer_task

SPLIT_NAMES = ("train", "dev", "test")
_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
PUBLISHED_FILE = "published.yaml"
PUBLISHED_KEYS = ("metric", "value", "source")


@dataclass(frozen=True)
class SuiteTask:
    """Where one task's files are. ``dev`` is None when the task has no validation split."""

    name: str
    folder: Path
    train: Path
    test: Path
    dev: Path | None = None


@dataclass
class TaskData:
    """A task's splits read and encoded: targets are class ids (int64) in ``spec.labels`` order."""

    task: SuiteTask
    spec: TaskSpec
    train: LabelledData
    test: LabelledData
    dev: LabelledData | None
    y_train: np.ndarray
    y_test: np.ndarray
    y_dev: np.ndarray | None = None
    lengths: set[int] = field(default_factory=set)  # distinct sequence lengths over all splits

    @property
    def fixed_length(self) -> int | None:
        """The one sequence length of every split, or None when lengths vary."""
        return next(iter(self.lengths)) if len(self.lengths) == 1 else None


def _split_file(folder: Path, split: str) -> Path | None:
    for suffix in _SUFFIXES:
        if (folder / f"{split}{suffix}").is_file():
            return folder / f"{split}{suffix}"
    return None


def discover_tasks(suites: list[str | os.PathLike], only: list[str] | None = None) -> list[SuiteTask]:
    """The tasks of every suite folder, sorted by name within a suite. A folder that itself holds
    ``train.csv`` is one task. ``only`` keeps the named tasks (all must exist).

    Raises:
        InputDataError: a suite that is not a folder or holds no task; a task folder without
            ``train.csv`` or ``test.csv``; two tasks of one name; an ``only`` name that is no task.
    """
    tasks: list[SuiteTask] = []
    for suite in map(Path, suites):
        if not suite.is_dir():
            raise InputDataError(f"{suite}: not a folder (a suite is a folder of task folders)")
        folders = [suite] if _split_file(suite, "train") else sorted(p for p in suite.iterdir() if p.is_dir())
        found = [_task(folder) for folder in folders if any(folder.iterdir())]
        if not found:
            raise InputDataError(f"{suite}: no task folders (each needs train.csv and test.csv)")
        tasks.extend(found)
    names = [t.name for t in tasks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputDataError(f"task names must be unique across suites; twice: {', '.join(twice)}")
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise InputDataError(f"no such task: {', '.join(missing)} (tasks: {', '.join(names)})")
        tasks = [t for t in tasks if t.name in only]
    return tasks


def _task(folder: Path) -> SuiteTask:
    files = {split: _split_file(folder, split) for split in SPLIT_NAMES}
    for split in ("train", "test"):
        if files[split] is None:
            raise InputDataError(f"{folder}: task folder without {split}.csv (needs train.csv and test.csv)")
    return SuiteTask(folder.name, folder, files["train"], files["test"], files["dev"])


def load_task(task: SuiteTask, *, lenient: bool = False) -> TaskData:
    """Read and check a task's splits: a classification task (binary or multiclass) whose dev
    and test labels all occur in train.

    Raises:
        InputDataError: invalid rows (file, line, column), an empty file, one class only, a
            regression or multi-label task, a dev/test label that train lacks (file and line).
    """
    train = _read(task.train, lenient)
    spec = infer_task(train)
    if spec.task not in ("binary", "multiclass"):
        raise InputDataError(
            f"{task.train}: a {spec.task} task; benchmark suites hold classification tasks "
            "(binary or multiclass labels)"
        )
    test = _read(task.test, lenient)
    dev = _read(task.dev, lenient) if task.dev else None
    known = f"{task.train}"

    def targets(data: LabelledData) -> np.ndarray:
        # encode_targets gives binary targets as float 0/1; the suite works with class ids throughout
        return encode_targets(data, spec, known_from=known).astype(np.int64)

    lengths = {len(s) for data in (train, test, dev) if data is not None for s in data.sequences}
    return TaskData(
        task, spec, train, test, dev, targets(train), targets(test), targets(dev) if dev else None, lengths
    )


def _read(path: Path, lenient: bool) -> LabelledData:
    data = read_labelled(str(path), lenient=lenient)
    if not len(data):
        raise InputDataError(f"{path}: no rows")
    return data


def read_published(tasks: list[SuiteTask], extra: str | os.PathLike | None = None) -> dict[str, dict]:
    """``{task name: {metric, value, source}}`` from the task folders' and suite folders'
    ``published.yaml`` and ``extra`` (later sources win). Tasks without a number are absent.

    Raises:
        InputDataError: a file that is not YAML of that shape (file and task named).
    """
    import yaml

    found: dict[str, dict] = {}
    names = {t.name for t in tasks}
    sources: list[tuple[Path, str | None]] = []
    for folder in dict.fromkeys(t.folder.parent for t in tasks):
        sources.append((folder / PUBLISHED_FILE, None))
    sources += [(t.folder / PUBLISHED_FILE, t.name) for t in tasks]
    if extra is not None:
        sources.append((Path(extra), None))
    for path, task_name in sources:
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputDataError(f"{path}: not valid YAML ({exc})") from exc
        entries = {task_name: data} if task_name else data
        if not isinstance(entries, dict):
            raise InputDataError(f"{path}: expected a mapping of task name to {{metric, value, source}}")
        for name, entry in entries.items():
            if name in names:
                found[name] = _published_entry(path, name, entry)
    return found


def _published_entry(path: Path, name: str, entry) -> dict:
    if not isinstance(entry, dict) or not {"metric", "value"} <= set(entry):
        raise InputDataError(f"{path}: task {name}: expected {{metric, value, source}}, got {entry!r}")
    unknown = sorted(set(entry) - set(PUBLISHED_KEYS))
    if unknown:
        raise InputDataError(f"{path}: task {name}: unknown key(s) {', '.join(unknown)}")
    try:
        value = float(entry["value"])
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"{path}: task {name}: value {entry['value']!r} is not a number") from exc
    return {"metric": str(entry["metric"]), "value": value, "source": str(entry.get("source", ""))}
