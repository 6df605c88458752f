"""The ``genomamba`` command line: a click group whose commands are imported only when run.

Each command lives in its own module under ``genomamba/cli/`` and does two things: parse its
options, and call one function of :mod:`genomamba.api` with them as named arguments (then print
what it returns). Keeping imports lazy means ``genomamba --help`` and ``genomamba validate`` never
pay for importing torch.

Around every command sits one error boundary (:mod:`genomamba.cli.boundary`): the project's own
errors (:mod:`genomamba.errors`), operating-system errors (read-only or full disks, a closed stdout)
and failed memory allocations become one ``error:`` line and a documented exit code instead of a
traceback; no command catches them itself.
"""

from __future__ import annotations

import copy
import importlib
import sys

import click

from genomamba import __version__
from genomamba.cli import boundary
from genomamba.errors import UsageError

# command name -> "module:attribute" of a click.Command; add one line per command.
COMMANDS: dict[str, str] = {
    "fetch": "genomamba.cli.fetch:fetch",
    "tokenize": "genomamba.cli.tokenize:tokenize",
    "validate": "genomamba.cli.validate:validate",
    "doctor": "genomamba.cli.doctor:doctor",
    "pretrain": "genomamba.cli.pretrain:pretrain",
    "finetune": "genomamba.cli.finetune:finetune",
    "evaluate": "genomamba.cli.evaluate:evaluate",
    "predict": "genomamba.cli.predict:predict",
    "embed": "genomamba.cli.embed:embed",
    "score-variants": "genomamba.cli.score_variants:score_variants",
    "track": "genomamba.cli.track:track",
    "make-task": "genomamba.cli.make_task:make_task",
    "benchmark": "genomamba.cli.benchmark:benchmark",
    "workflow": "genomamba.cli.workflow:workflow",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = copy.copy(getattr(importlib.import_module(module_name), attribute))
        command.context_class = boundary.CommandContext  # lets the boundary read the command's options
        return command

    def invoke(self, ctx: click.Context):
        """Run the command inside the error boundary (see :mod:`genomamba.cli.boundary`)."""
        try:
            result = super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except UsageError as exc:  # options that cannot work together, found by the library
            raise boundary.usage_error(exc, ctx.meta.get(boundary.CONTEXT_KEY)) from exc
        except Exception as exc:
            code = boundary.report(exc, ctx.meta.get(boundary.CONTEXT_KEY))
            if code is None:
                raise
            ctx.exit(code)
        try:
            sys.stdout.flush()  # a closed or full stdout fails here, not at interpreter exit
        except OSError as exc:
            ctx.exit(boundary.report(exc, ctx.meta.get(boundary.CONTEXT_KEY), writing_stdout=True))
        return result


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="genomamba")
def main() -> None:
    """genomamba: long-context DNA language models (bidirectional, reverse-complement aware Mamba).

    Every command prints results to stdout or -o and logs to stderr. Exit codes: 0 ok, 1 failure,
    2 usage error, 65 invalid input data, 69 no usable device or kernel, or out of memory, 73 an
    output cannot be created (read-only, permission denied, no such folder), 74 I/O error (disk
    full), 75 another genomamba process is writing the same output, 141 stdout closed by its
    reader (| head).
    """
