"""``genomamba fetch``: download (or copy) the genomes of a data manifest and verify them."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES

EPILOG = """\b
Examples:
  genomamba fetch data_manifests/demo.yaml -o genomes
  genomamba fetch data_manifests/human.yaml --genome hg38_chr21 -o genomes
  genomamba fetch data_manifests/demo.yaml --list

Files land in DIR/<genome>/<file>. A file that is already there with the expected sha256 is
not fetched again. Files whose manifest entry has no sha256 yet (verify:
required-on-first-fetch) are checked against the published md5 list when the manifest names
one, and their sha256 is recorded in DIR/genomamba-fetch.lock.tsv; later fetches must match it.
A file with a deb_member is one file of a Debian package: the .deb is downloaded, checked
(deb_sha256), the file unpacked and checked, and the .deb deleted (docs/data.md).

\b
stdout: one TSV line per file: genome, file, path, sha256, size, status, verified_by.
Exit codes: 0 ok; 65 checksum or size mismatch, missing local file, bad manifest;
            69 no source reachable.
""" + SYSTEM_EXIT_CODES

#: The columns of --list.
LISTING_COLUMNS = ("genome", "file", "role", "size", "sha256", "sources", "licence")


@click.command("fetch", epilog=EPILOG)
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-g",
    "--genome",
    "genomes",
    multiple=True,
    metavar="NAME",
    help="Genome to fetch (repeatable). [default: all]",
)
@click.option(
    "--file", "files", multiple=True, metavar="NAME", help="Only this file of the genome(s) (repeatable)."
)
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to fetch into (files go to DIR/<genome>/<file>). Required unless --list.",
)
@click.option(
    "--lock",
    "lock_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Lock file recording first-fetch digests. [default: DIR/genomamba-fetch.lock.tsv]",
)
@click.option("--list", "list_only", is_flag=True, help="Print the genomes and files as TSV and exit.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Network timeout in seconds.")
def fetch(
    manifest: Path,
    genomes: tuple[str, ...],
    files: tuple[str, ...],
    out_dir: Path | None,
    lock_path: Path | None,
    list_only: bool,
    timeout: float,
) -> None:
    """Fetch the files of MANIFEST (local path first, then each mirror URL) and verify their sha256."""
    from genomamba import api

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="genomamba fetch: %(message)s", stream=sys.stderr)
    if list_only:
        click.echo("\t".join(LISTING_COLUMNS))
        for row in api.manifest_files(manifest, genomes=genomes):
            click.echo("\t".join(row[column] for column in LISTING_COLUMNS))
        return
    if out_dir is None:
        raise click.UsageError("-o/--out-dir is required (or use --list)")
    results = api.fetch(manifest, out_dir, genomes=genomes, files=files, lock_path=lock_path, timeout=timeout,
                        progress=True)
    click.echo("genome\tfile\tpath\tsha256\tsize\tstatus\tverified_by")
    for r in results:
        click.echo(f"{r.genome}\t{r.name}\t{r.path}\t{r.sha256}\t{r.size}\t{r.status}\t{r.verified_by}")
