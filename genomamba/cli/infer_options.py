"""Options and error handling that ``genomamba embed`` and ``genomamba predict`` share."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.errors import GenomambaError

EXIT_CODES = """\b
Exit codes: 0 done; 2 usage (a bad option or output suffix); 65 an invalid FASTA or BED file (file,
line and what is wrong), no sequence at all (every record empty, shorter than --window with --last
drop, or over --max-n-fraction), or a model directory that cannot be loaded (predict: or has no
sequence head); 69 --device cuda without a GPU (predict: or a .bw output without pyBigWig); 75
another genomamba process is writing the output. Nothing is written unless the whole run
succeeds: outputs go to temporary names and are renamed at the end.""" + SYSTEM_EXIT_CODES


def shared_options(command: Callable) -> Callable:
    """MODEL_DIR [FASTA...] -o OUT, --bed/--genome, and the windowing, batching and device options."""
    options = [
        click.argument("model_dir", type=click.Path(exists=True, file_okay=False)),
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
        click.option("--batch-size", type=click.IntRange(min=1), default=16,
                     help="Windows per forward pass."),
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


def run_reporting_errors(
    run: Callable[..., dict], command: str, unit: str = "base", outputs: Sequence[str | None] = ()
) -> dict:
    """``run(progress=...)`` holding the lock of each of its ``outputs`` (None: not asked for),
    with a bar of ``unit``s done (bases, variants) on stderr when it is a terminal, and the
    project's errors printed and mapped to their exit codes."""
    from genomamba.io.locks import output_locks

    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit=unit, unit_scale=True, desc=command, file=sys.stderr, leave=False)
    try:
        with output_locks(outputs, note=log):  # exit 75 while another process writes one of them
            return run(progress=bar.update if bar is not None else None)
    except GenomambaError as exc:
        _close(bar)  # before the message, which the bar's line would otherwise overwrite
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ValueError as exc:  # an unknown output suffix, a stride without a window
        _close(bar)
        raise click.UsageError(str(exc)) from exc
    finally:
        _close(bar)


def _close(bar) -> None:
    if bar is not None:
        bar.close()  # a second close does nothing


def log(message: str) -> None:
    click.echo(message, err=True)
