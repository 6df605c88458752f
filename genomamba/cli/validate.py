"""``genomamba validate``: check FASTA (or GenBank) files and report each record."""

from __future__ import annotations

import json
import sys

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.cli.console import warn
from genomamba.errors import EXIT_DATA

EPILOG = """\b
Examples:
  genomamba validate genome.fa.gz
  genomamba validate --format tsv chr*.fa > report.tsv
  zcat genome.fa.gz | genomamba validate --format json -

\b
Per record: length, GC fraction (over A/C/G/T, N excluded), N fraction (IUPAC codes count as
N), soft-mask fraction (lower case), IUPAC code counts and problems. Invalid characters are
reported per record (count and first place) and make the exit code 65; file-level errors
(empty file, FASTQ, text before the first '>', duplicate names, bad line endings, truncated
gzip, malformed GenBank...) are printed as 'error: ...' on stderr and also give 65.
A file whose first non-blank line starts with LOCUS is read as GenBank: its ORIGIN sequences,
named ACCESSION.VERSION (GenBank's lower case is not soft-masking).
Exit codes: 0 valid; 2 usage; 65 invalid input.
""" + SYSTEM_EXIT_CODES

_COLUMNS = ("file", "record", "length", "gc", "n_frac", "softmask_frac", "iupac", "problems")


@click.command("validate", epilog=EPILOG, context_settings={"show_default": True})
@click.argument(
    "fasta", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "tsv", "json"]),
    default="table",
    help="Report format on stdout.",
)
@click.option("--lenient", is_flag=True, help="Invalid characters are read as N and not an error.")
@click.option("--strict", is_flag=True, help="Records without sequence are errors, not warnings.")
@click.option("--rna", is_flag=True, help="Read U as T.")
def validate(fasta: tuple[str, ...], fmt: str, lenient: bool, strict: bool, rna: bool) -> None:
    """Check FASTA (or GenBank) files and print a per-record report; exit 65 if any input is invalid."""
    from genomamba import api

    report = api.validate(fasta, lenient=lenient, strict=strict, rna=rna, warn=warn)
    for message in report.errors:
        click.echo(f"error: {message}", err=True)
    _print_report(report.rows, fmt)
    if not report.valid:
        sys.exit(EXIT_DATA)


def _cells(row: dict) -> list[str]:
    gc = row["gc_fraction"]
    iupac = ",".join(f"{code}={count}" for code, count in row["iupac_counts"].items())
    return [
        row["file"],
        row["record"],
        str(row["length"]),
        "NA" if gc is None else f"{gc:.4f}",
        f"{row['n_fraction']:.4f}",
        f"{row['softmask_fraction']:.4f}",
        iupac or "-",
        "; ".join(row["problems"]) or "-",
    ]


def _print_report(rows: list[dict], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    table = [list(_COLUMNS)] + [_cells(row) for row in rows]
    if fmt == "tsv":
        for cells in table:
            click.echo("\t".join(cell.replace("\t", " ") for cell in cells))
        return
    widths = [max(len(cells[i]) for cells in table) for i in range(len(_COLUMNS) - 1)]
    for cells in table:
        # the last column (problems) is free text: left unpadded
        click.echo("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1])
