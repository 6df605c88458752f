"""The arguments and options that ``genomamba embed`` and ``genomamba predict`` share."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.cli.console import progress_bar
from genomamba.cli.options import ModelDirectory, changed_options
from genomamba.cli.streaming_options import STREAMING_OPTIONS

EXIT_CODES = """\b
Exit codes: 0 done; 2 usage (a bad option or output suffix); 65 an invalid FASTA or BED file (file,
line and what is wrong), no sequence at all (every record empty, shorter than --window with --last
drop, or over --max-n-fraction), a model directory that cannot be loaded (predict: or has no
sequence head), or the name of a model this build does not ship; 69 --device cuda without a GPU
(predict: or a .bw output without pyBigWig); 75 another genomamba process is writing the output.
Nothing is written unless the whole run succeeds: outputs go to temporary names and are renamed
at the end.""" + SYSTEM_EXIT_CODES


def check_context_options(context: str, *, also: str = "") -> None:
    """Refuse the options that ``--context`` makes pointless: the memory plan's (STREAMING_OPTIONS)
    without ``record`` (``also`` names another option they go with), ``--batch-size`` with it.

    Raises:
        click.UsageError: naming the options given.
    """
    if context == "record":
        if changed_options(("batch_size",)):
            raise click.UsageError("--batch-size does not apply with --context record (each record runs in "
                                   "one streamed pass; --chunk-size and --max-gpu-memory set its memory)")
        return
    given = changed_options(STREAMING_OPTIONS)
    if given:
        raise click.UsageError(f"{', '.join(given)} go with {also + ' or ' if also else ''}--context record")


def shared_options(command: Callable) -> Callable:
    """MODEL_DIR [FASTA...] -o OUT, --bed/--genome, and the windowing, context, batching and device
    options."""
    options = [
        click.argument("model_dir", type=ModelDirectory()),
        click.argument("fasta", nargs=-1, required=False, type=click.Path(exists=True, dir_okay=False)),
        click.option("--bed", type=click.Path(exists=True, dir_okay=False),
                     help="Instead of FASTA files: the intervals of this BED file (BED3-BED12, or "
                          "columns named by a header line), read from --genome."),
        click.option("--genome", type=click.Path(exists=True, dir_okay=False),
                     help="The genome FASTA (plain, BGZF or gzip) or GenBank file that --bed's intervals "
                          "are on."),
        click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
                     help="Output table: .parquet, .tsv or .csv (predict: also a .bedgraph or .bw track); "
                          "text ones may end in .gz."),
        click.option("--window", type=click.IntRange(min=1),
                     help="Cut records into windows of this many bases. [default: whole records]"),
        click.option("--stride", type=click.IntRange(min=1),
                     help="Bases between window starts. [default: --window]"),
        click.option("--last", type=click.Choice(["keep", "shift", "drop"]), default="keep",
                     help="The last, shorter window: keep it, shift it to end at the record's end, "
                          "or drop it."),
        click.option("--context", type=click.Choice(["window", "record"]), default="window",
                     help="What a window's values are made from: its own bases alone (window), or the "
                          "hidden states of its whole record (record): one exact streamed pass per record "
                          "in planned memory (--max-gpu-memory, --chunk-size, --residual-store), each "
                          "window pooled from it. FASTA inputs only."),
        click.option("--batch-size", type=click.IntRange(min=1), default=16,
                     help="Windows per forward pass (--context window)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     help="Where to run."),
        click.option("--lenient", is_flag=True, help="Read invalid sequence characters as N."),
        click.option("--max-n-fraction", type=click.FloatRange(0.0, 1.0), default=1.0,
                     help="Leave out windows with a larger fraction of N (assembly gaps), as tokenize "
                          "does; they are counted in one warning. 1.0 keeps all."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def main_progress_bar(desc: str, *, unit: str):
    """The command's progress bar (:func:`genomamba.cli.console.progress_bar`), drawn by one process:
    under torchrun (which sets ``RANK``) rank 0 draws it and the others none."""
    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext(None)
    return progress_bar(desc, unit=unit)
