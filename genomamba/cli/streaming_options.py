"""Options of the commands that stream whole records through a model: ``embed --per-base``, ``track``,
and ``embed``/``predict`` with ``--context record``."""

from __future__ import annotations

from collections.abc import Callable

import click

#: The parameters :func:`streaming_options` adds.
STREAMING_OPTIONS = ("max_gpu_memory", "chunk_size", "residual_store")


class MemorySize(click.ParamType):
    """A memory size such as ``20G``, ``512MiB`` or a number of bytes (genomamba.infer.memory_plan)."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        from genomamba.infer.memory_plan import parse_size

        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def streaming_options(command: Callable) -> Callable:
    """``--max-gpu-memory``, ``--chunk-size`` and ``--residual-store``."""
    options = [
        click.option("--max-gpu-memory", type=MemorySize(), default=None,
                     help="GPU memory the run is planned to fit (e.g. 20G): the chunk size is chosen so "
                          "that one layer over one chunk fits. [default: 80% of the free GPU memory]"),
        click.option("--chunk-size", type=click.IntRange(min=1), default=None,
                     help="Bases per chunk, instead of the planned size. [default: planned; on CPU "
                          "1048576, or fewer when memory is short]"),
        click.option("--residual-store", type=click.Choice(["auto", "device", "memory", "disk"]),
                     default="auto",
                     help="Where a record's residual stream (length x width x 4 bytes) waits between "
                          "layers: GPU memory, host memory, or a file beside the output. [default: auto: "
                          "the GPU when it fits the budget, else host memory unless it would not fit]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command
