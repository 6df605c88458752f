"""``genomamba workflow``: the Snakemake workflow that comes with genomamba (``workflow init``)."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import click

from genomamba.errors import EXIT_FAILURE, EXIT_USAGE

INIT_EPILOG = """\b
Examples:
  genomamba workflow init my-run
  cd my-run && snakemake --cores 2 --configfile config/demo.yaml

\b
Writes DIR/Snakefile, DIR/pipelines/ (one .smk per stage and the config schema),
DIR/config/ (demo.yaml and an example run on downloaded data), DIR/data_manifests/ (what
each genome is and where to get it) and the demo genomes DIR/data/demo/. Run snakemake
from the environment genomamba is installed in: the workflow imports genomamba and its
rules call the `genomamba` command.
Exit codes: 0 ok; 1 failure (e.g. no space left; DIR is left as it was); 2 DIR is a file,
or a non-empty folder without --force.
"""

NEXT_STEPS = """\
wrote the genomamba workflow to {dir} ({n} files). Next steps:
  cd {cd}
  snakemake --cores 2 --configfile config/demo.yaml   # the demo, about 2 minutes: results/demo/
Then copy config/demo.yaml, edit the copy (every option: pipelines/schema/config.schema.yaml)
and run snakemake with --configfile naming it."""


WORKFLOW_EPILOG = """\b
Example:
  genomamba workflow init my-run
"""


@click.group("workflow", epilog=WORKFLOW_EPILOG)
def workflow() -> None:
    """The Snakemake workflow: fetch, validate, tokenize, pretrain, finetune, embed, predict, variants."""


@workflow.command("init", epilog=INIT_EPILOG)
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True,
              help="Write into a non-empty DIR: replaces the workflow's files, keeps everything else.")
def init(directory: Path, force: bool) -> None:
    """Write a runnable copy of the workflow and its demo data into DIR."""
    from genomamba import api

    try:
        files = api.workflow_init(directory, force=force)
    except FileExistsError as exc:
        click.echo(f"genomamba workflow init: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        click.echo(f"genomamba workflow init: error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(NEXT_STEPS.format(dir=directory, n=len(files), cd=shlex.quote(str(directory))))
    if importlib.util.find_spec("snakemake") is None:
        click.echo("snakemake is not installed here: pip install 'genomamba[pipelines]'")
