"""``genomamba embed --per-base``: the per-base branch of ``embed`` (genomamba.infer.per_base)."""

from __future__ import annotations

import click

from genomamba.cli.infer_options import log, run_reporting_errors
from genomamba.cli.streaming_options import given_streaming_options, stream_settings

#: embed's options that cut or filter windows, which whole-record per-base output does not take,
#: with their defaults.
WINDOW_OPTIONS = {"window": None, "stride": None, "last": "keep", "bed": None, "genome": None,
                  "pooling": "mean", "max_n_fraction": 1.0}


def embed_per_base_command(model_dir: str, fasta: tuple[str, ...], out: str, dtype: str,
                           options: dict) -> None:
    """Check that only options per-base output takes were given, then write the directory ``out``.

    Raises:
        click.UsageError: a windowing, BED or pooling option (exit 2).
    """
    given = [f"--{name.replace('_', '-')}" for name, default in WINDOW_OPTIONS.items()
             if options.get(name, default) != default]
    if given:
        raise click.UsageError(f"--per-base embeds every base of whole records: {', '.join(given)} "
                               "do not apply (drop them)")
    settings = stream_settings(options, options["device"])

    def run(progress):
        from genomamba.infer.per_base import embed_per_base

        return embed_per_base(model_dir, list(fasta), out, layer=options["layer"], dtype=dtype,
                              conjoin=options["conjoin"], lenient=options["lenient"], settings=settings,
                              log=log, progress=progress)

    run_reporting_errors(run, "embed", outputs=[out])


def refuse_per_base_options(dtype: str, options: dict) -> None:
    """Pop the streaming options of a pooled ``embed`` run; any that was given is an error.

    Raises:
        click.UsageError: ``--dtype`` or a streaming option without ``--per-base`` (exit 2).
    """
    given = given_streaming_options(options) + (["--dtype"] if dtype != "float32" else [])
    if given:
        raise click.UsageError(f"{', '.join(given)} go with --per-base")
    stream_settings(options)
