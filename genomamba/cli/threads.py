"""``--threads N``, the CPU-thread option of every command that runs a model.

torch already sizes its CPU thread pool sensibly when left alone: from OMP_NUM_THREADS when set
(Snakemake sets it to a rule's ``threads``), else from the CPUs this process may run on (its
affinity mask, which a SLURM job's cpuset narrows; ``taskset -c 0`` gives one thread). So without
``--threads`` nothing is changed; the option is for an explicit count, e.g. several commands
sharing one machine, and it is what the pipeline's rules pass.
"""

from __future__ import annotations

from collections.abc import Callable

import click


def _set_torch_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    if value is None:
        return  # torch's own choice, see the module docstring
    import torch  # only here: parsing options of a command must not import torch otherwise

    torch.set_num_threads(value)


def threads_option(command: Callable) -> Callable:
    """Add ``--threads N``: sets torch's CPU threads (``torch.set_num_threads``) while the options
    are parsed, before the command runs. The value is not passed to the command."""
    return click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        expose_value=False,
        callback=_set_torch_threads,
        help="CPU threads torch uses. [default: OMP_NUM_THREADS if set, else the CPUs this process "
        "may run on]",
    )(command)
