"""``genomamba tokenize``: FASTA files -> a directory of memory-mappable token shards."""

from __future__ import annotations

import os

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.cli.console import log, progress_bar, warn
from genomamba.cli.options import ConfigDefault
from genomamba.io.windows import LAST_WINDOW_POLICIES

EPILOG = """\b
Examples:
  genomamba tokenize genome.fa.gz -o shards/genome
  genomamba tokenize chr*.fa --window 65536 --stride 32768 -o shards/w64k
  zcat genome.fa.gz | genomamba tokenize - -o shards/genome
  genomamba tokenize chrX.fa.gz --exclude-region X:62,000,001-69,999,930 -o shards/train
  genomamba tokenize chrX.fa.gz --region X:62,000,001-69,999,930 -o shards/heldout

\b
Input: FASTA or GenBank, plain or gzip/BGZF/xz/bzip2 (detected from the bytes, not the name); '-'
is stdin.
Output DIR: tokens-NNNNN.npy (uint8 ids, np.load(..., mmap_mode='r')), softmask-NNNNN.npy
(packed lower-case bits), index.parquet (record, start, end, strand, shard, offset, length,
mask_offset, n_fraction, softmask_fraction, input; 0-based half-open) and manifest.json
(input sha256, parameters, alphabet, versions). Only the + strand is stored; readers make the
- strand with the complement table (genomamba.io.shards.TokenShards).

\b
Last window (--last-window), for the bases after the last full window:
  keep   one shorter final window (default: windows tile the record exactly)
  shift  a full window moved back to end at the record end (bases repeat)
  pad    the shorter window padded with [PAD] up to --window tokens
  drop   no final window (records shorter than --window give nothing)

\b
Regions (--region, --exclude-region; samtools spelling CHROM:START-END, 1-based inclusive, or
CHROM for a whole record): --region reads only those stretches, --exclude-region all but those.
Either way each kept stretch is windowed from its own start, so no window crosses into a left-out
region (the pair above splits a genome into training and held-out shards without overlap).
A region naming a record the inputs lack, or running past its end, is invalid input.

\b
DIR is written atomically (DIR.tmp-<pid>, then renamed): after an error nothing is left.
Re-running with the same inputs and parameters does nothing; other inputs or parameters on
an existing DIR are an error unless --force.
Exit codes: 0 ok; 1 DIR conflict; 2 usage; 65 invalid input (message names file, record,
line and column); 75 another genomamba process is writing DIR. A run killed mid-way leaves
DIR.tmp-<pid>; the next run on DIR removes it.
""" + SYSTEM_EXIT_CODES

#: Where the defaults of the windowing options come from.
OPTIONS = "genomamba.io.tokenize:TokenizeOptions"


@click.command("tokenize", epilog=EPILOG, context_settings={"show_default": True})
@click.argument(
    "fasta", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option(
    "-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory."
)
@click.option("--window", cls=ConfigDefault, config=OPTIONS, type=click.IntRange(min=1),
              help="Window length in bases.")
@click.option(
    "--stride",
    default=None,
    type=click.IntRange(min=1),
    help="Step between window starts. [default: --window]",
)
@click.option(
    "--last-window",
    cls=ConfigDefault,
    config=OPTIONS,
    type=click.Choice(LAST_WINDOW_POLICIES),
    help="What to do with the bases after the last full window (see below).",
)
@click.option(
    "--max-n-fraction",
    cls=ConfigDefault,
    config=OPTIONS,
    type=click.FloatRange(0.0, 1.0),
    help="Leave out windows with a larger fraction of N (1.0 keeps all).",
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    metavar="REGION",
    help="Read only this region (repeatable; see below).",
)
@click.option(
    "--exclude-region",
    "exclude_regions",
    multiple=True,
    metavar="REGION",
    help="Leave this region out (repeatable; see below).",
)
@click.option("--lenient", is_flag=True, help="Read invalid characters as N (counted in the manifest).")
@click.option("--strict", is_flag=True, help="Records without sequence are errors, not warnings.")
@click.option("--rna", is_flag=True, help="Read U as T.")
@click.option("--shard-size", cls=ConfigDefault, config=OPTIONS, field="shard_tokens",
              type=click.IntRange(min=1), help="Tokens per shard.")
@click.option("--force", is_flag=True, help="Replace DIR if it holds shards of other inputs or parameters.")
def tokenize(
    fasta: tuple[str, ...],
    out_dir: str,
    window: int,
    stride: int | None,
    last_window: str,
    max_n_fraction: float,
    regions: tuple[str, ...],
    exclude_regions: tuple[str, ...],
    lenient: bool,
    strict: bool,
    rna: bool,
    shard_size: int,
    force: bool,
) -> None:
    """Cut the records of FASTA files into windows of token ids and write them to DIR (-o)."""
    from genomamba import api

    if lenient and strict:
        raise click.UsageError("--lenient and --strict cannot be used together")
    if regions and exclude_regions:
        raise click.UsageError("--region and --exclude-region cannot be used together")
    def input_bytes() -> int | None:  # the bar's total: unknown for stdin
        return None if "-" in fasta else sum(os.path.getsize(p) for p in fasta)

    with progress_bar("tokenize", unit="B", total=input_bytes) as progress:
        result = api.tokenize(
            fasta, out_dir, window=window, stride=stride, last_window=last_window,
            max_n_fraction=max_n_fraction, regions=regions, exclude_regions=exclude_regions,
            lenient=lenient, strict=strict, rna=rna, shard_tokens=shard_size, force=force, warn=warn,
            progress=progress,
        )
    totals = result.manifest["totals"]
    verb = "up to date" if result.status == "up-to-date" else "wrote"
    log(
        f"{verb}: {result.directory}: {totals['windows']} windows from {totals['records']} records "
        f"({totals['bases']:,} bases, {totals['windows_filtered_n']} windows over --max-n-fraction)"
    )
