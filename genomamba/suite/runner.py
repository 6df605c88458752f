"""``genomamba benchmark``: every method on every task of one or more suites, over several seeds.

Everything is read and checked before the first run (a bad suite fails fast, exit 65). Then
each (task, method, seed) runs in turn and appends its row to OUT/results.csv; a run already
there is skipped, so a killed benchmark resumes where it stopped, and several processes given
disjoint ``tasks`` can share one OUT. Last, OUT/results.md and OUT/results.png summarise
everything in results.csv. Fine-tuning runs keep their logs in OUT/runs/TASK/METHOD/seed-N/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genomamba.runtime.log import stderr_log
from genomamba.suite.methods import DEFAULT_METHODS, Method, MethodError, RunContext, parse_method, run_method
from genomamba.suite.results import append_row, completed, row_of, write_report
from genomamba.suite.tasks import TaskData, discover_tasks, load_task, read_published

DEFAULT_SEEDS = (1, 2, 3)


@dataclass
class BenchmarkConfig:
    """Every knob of ``genomamba benchmark``."""

    suites: list[str]
    out: str
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    tasks: list[str] | None = None  # None: every task of the suites
    model: str | None = None  # for finetune:model and probe
    published: str | None = None  # a published.yaml for the report
    metric: str = "mcc"  # the report's metric
    device: str = "auto"
    keep_models: bool = False
    report_only: bool = False  # run nothing; summarise results.csv as it is

    def parsed_methods(self) -> list[Method]:
        """The methods, checked (MethodError names the first bad one)."""
        methods = [parse_method(m) for m in self.methods]
        if any(m.needs_model for m in methods) and self.model is None:
            names = ", ".join(m.name for m in methods if m.needs_model)
            raise MethodError(f"{names} need(s) a pretrained model: give --model DIR")
        return methods


def run_benchmark(config: BenchmarkConfig, log: Callable[[str], None] | None = None) -> Path:
    """Run what is not yet in OUT/results.csv and write the report; returns OUT.

    Raises:
        MethodError: a bad method (usage). InputDataError: a bad suite or task file.
    """
    log = log or stderr_log
    methods = config.parsed_methods()
    tasks = discover_tasks(config.suites, config.tasks)
    published = read_published(tasks, config.published)
    out = Path(config.out)
    if config.report_only:
        summary = write_report(out, published, config.metric)
        log(f"benchmark: {len(summary)} task x method summaries in {out / 'results.md'} and results.png")
        return out
    data = {task.name: load_task(task) for task in tasks}  # every file checked before any run
    done = completed(out)
    pairs = [(name, method) for name in data for method in methods if _applies(method, data[name], log)]
    todo = [
        (name, method, seed)
        for name, method in pairs
        for seed in config.seeds
        if (name, method.name, seed) not in done
    ]
    log(f"benchmark: {len(tasks)} task(s), {len(methods)} method(s), seeds {config.seeds}: "
        f"{len(todo)} run(s) to do, {len(done)} already in {out}")
    for i, (name, method, seed) in enumerate(todo, 1):
        task = data[name]
        log(f"[{i}/{len(todo)}] {name} | {method.name} | seed {seed}")
        context = RunContext(
            _run_dir(out, name, method.name, seed), config.device, config.model, config.keep_models,
            log=lambda message: log(f"    {message}"),
        )
        start = time.perf_counter()
        metrics = run_method(method, task, seed, context)
        seconds = time.perf_counter() - start
        append_row(out, row_of(name, method.name, seed, metrics, len(task.train), len(task.test), seconds))
        log(f"    test {config.metric} {_shown(metrics.get(config.metric))} in {seconds:.1f} s")
    summary = write_report(out, published, config.metric)
    log(f"benchmark: {len(summary)} task x method summaries in {out / 'results.md'} and results.png")
    return out


def _applies(method: Method, data: TaskData, log: Callable[[str], None]) -> bool:
    """One-hot features need one sequence length; other methods take any task (a skip is logged)."""
    if method.kind == "onehot-lr" and data.fixed_length is None:
        log(f"benchmark: {method.name} skipped on {data.task.name} (sequences of several lengths)")
        return False
    return True


def _run_dir(out: Path, task: str, method: str, seed: int) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", method)
    return out / "runs" / task / slug / f"seed-{seed}"


def _shown(value) -> str:
    return "undefined" if value is None else f"{value:.4f}"
