"""The data commands as functions: ``fetch``, ``tokenize``, ``validate``, ``make-task``.

Each is what its ``genomamba`` command runs once the options are parsed; the command only prints.
Outputs are written atomically under a lock (:mod:`genomamba.io.locks`: a second process writing
the same output gets :class:`~genomamba.io.locks.OutputBusyError`, exit 75). A tuning parameter left
at None takes the library's default (:mod:`genomamba.api.options`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from genomamba.api.options import Log, Progress, given, usage_errors
from genomamba.errors import UsageError

if TYPE_CHECKING:
    from genomamba.io.fetch import FetchResult
    from genomamba.io.tokenize import TokenizeResult

PathLike = str | os.PathLike
#: The tasks ``make_task`` builds (genomamba.tasks).
TASKS = ("coding",)


def fetch(
    manifest: PathLike,
    out_dir: PathLike,
    *,
    genomes: Sequence[str] = (),
    files: Sequence[str] = (),
    lock_path: PathLike | None = None,
    timeout: float | None = None,
    progress: bool = False,
) -> list[FetchResult]:
    """Download (or copy) the files of a data manifest into ``out_dir/<genome>/<file>`` and verify
    their sha256 (a file already there with the right digest is not fetched again).

    ``genomes``, ``files``: only these (default: all); ``lock_path``: the file recording first-fetch
    digests (default ``out_dir/genomamba-fetch.lock.tsv``); ``timeout``: network seconds;
    ``progress``: byte bars on stderr.

    Returns:
        One :class:`~genomamba.io.fetch.FetchResult` per file (genome, name, path, sha256, size,
        status, verified_by).

    Raises:
        InputDataError: a bad manifest, an unknown genome or file, a checksum or size mismatch, a
            missing local file (nothing is left at the target).
        UnavailableError: no source could be reached.
    """
    from genomamba.io.fetch import fetch_manifest
    from genomamba.io.manifest import load_manifest

    return fetch_manifest(load_manifest(manifest), out_dir, genomes=genomes, files=files,
                          lock_path=lock_path, progress=progress, **given(timeout=timeout))


def manifest_files(manifest: PathLike, *, genomes: Sequence[str] = ()) -> list[dict[str, str]]:
    """The files a data manifest names (``genomamba fetch --list``), one dict per file with
    ``genome, file, role, size, sha256, sources, licence`` as text ("" for an unknown size; the
    ``verify`` policy where no sha256 is known yet). Reads nothing but the manifest.

    Raises:
        InputDataError: a bad manifest or an unknown genome name.
    """
    from genomamba.io.manifest import load_manifest

    parsed = load_manifest(manifest)
    selected = [parsed.genome(g) for g in genomes] if genomes else list(parsed.genomes.values())
    return [
        {"genome": genome.name, "file": f.name, "role": f.role, "size": "" if f.size is None else str(f.size),
         "sha256": f.sha256 or f.verify, "sources": " ".join(f.sources), "licence": genome.licence}
        for genome in selected for f in genome.files
    ]


def tokenize(
    fasta: Sequence[PathLike],
    out_dir: PathLike,
    *,
    window: int | None = None,
    stride: int | None = None,
    last_window: str | None = None,
    max_n_fraction: float | None = None,
    regions: Sequence[str] = (),
    exclude_regions: Sequence[str] = (),
    lenient: bool = False,
    strict: bool = False,
    rna: bool = False,
    shard_tokens: int | None = None,
    force: bool = False,
    warn: Log | None = None,
    progress: Progress | None = None,
) -> TokenizeResult:
    """Cut the records of FASTA (or GenBank) files (``-``: stdin) into windows of token ids and
    write the shard directory ``out_dir`` (token and soft-mask ``.npy`` shards, ``index.parquet``,
    ``manifest.json``; see :mod:`genomamba.io.tokenize`). The parameters are those of
    :class:`~genomamba.io.tokenize.TokenizeOptions`; ``force`` replaces a directory made from other
    inputs or parameters; ``warn`` receives warnings, ``progress`` the input bytes read.

    Returns:
        A :class:`~genomamba.io.tokenize.TokenizeResult` (status ``written`` or ``up-to-date``).

    Raises:
        InputDataError: invalid input, naming file, record, line and column (nothing is left).
        GenomambaError: ``out_dir`` holds shards of other inputs or parameters (without ``force``).
        UsageError: options that cannot work together (a stride longer than allowed, a bad region).
        OutputBusyError: another process is writing ``out_dir``.
    """
    from genomamba.io.locks import output_lock
    from genomamba.io.tokenize import TokenizeOptions, tokenize_files

    options = TokenizeOptions(
        regions=tuple(regions), exclude_regions=tuple(exclude_regions), lenient=lenient, strict=strict,
        rna=rna, **given(window=window, stride=stride, last_window=last_window,
                         max_n_fraction=max_n_fraction, shard_tokens=shard_tokens),
    )
    with usage_errors(), output_lock(out_dir, note=warn):
        return tokenize_files(list(fasta), out_dir, options, force=force, warn=warn, progress=progress)


@dataclass
class ValidationReport:
    """What :func:`validate` found: ``rows`` (per record: ``file`` and the statistics of
    :class:`~genomamba.io.fasta.RecordStats` ``as_dict``) and ``errors`` (one line each: a record's
    invalid characters, or what made a file unreadable)."""

    rows: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors


def validate(
    fasta: Sequence[PathLike], *, lenient: bool = False, strict: bool = False, rna: bool = False,
    warn: Log | None = None,
) -> ValidationReport:
    """Read every record of FASTA (or GenBank) files (``-``: stdin) and report each: length, GC,
    N and soft-mask fractions, IUPAC codes, problems. ``lenient``: invalid characters are read as
    N, not errors; ``strict``: records without sequence are errors, not warnings (to ``warn``).

    An invalid file does not stop the others: its error is in the report's ``errors``. Raises
    nothing for invalid input.
    """
    from genomamba.errors import GenomambaError
    from genomamba.io.fasta import FastaReader

    report = ValidationReport()
    for path in fasta:
        try:
            with FastaReader(path, rna=rna, lenient=lenient, strict=strict, softmask=False,
                             report_invalid=True, warn=warn) as reader:
                for record in reader.records():
                    for _ in record.chunks():  # the statistics are complete once the sequence is read
                        pass
                    report.rows.append({"file": reader.name, **record.stats.as_dict()})
                    if record.stats.invalid_count:
                        where = f"{reader.name}: record '{record.name}'"
                        report.errors.append(f"{where}, {record.stats.first_invalid}")
        except GenomambaError as exc:  # this file is unreadable; the next may be fine
            report.errors.append(str(exc))
    return report


def make_task(
    task: str,
    fasta: PathLike,
    gff3: PathLike,
    out: PathLike,
    *,
    window: int | None = None,
    per_class: int | None = None,
    test_chroms: Sequence[str] = (),
    group_size: int | None = None,
    seed: int | None = None,
    log: Log | None = None,
) -> list[dict[str, str]]:
    """Build the labelled windows of ``task`` (:data:`TASKS`; see :mod:`genomamba.tasks.coding`)
    from a genome and its GFF3 annotation and write them to the CSV ``out`` (id, sequence, label,
    group, split; atomically). ``test_chroms``: the records whose windows form the test split.

    Returns:
        The rows written.

    Raises:
        InputDataError: an invalid FASTA or GFF3, an unknown test record, no window of a class.
        UsageError: an unknown ``task``. OutputBusyError: another process is writing ``out``.
    """
    from genomamba.io.locks import output_lock
    from genomamba.tasks.coding import coding_task, write_task_csv

    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    with output_lock(out, note=log):
        rows = coding_task(fasta, gff3, test_chroms=tuple(test_chroms), **given(
            window=window, per_class=per_class, group_size=group_size, seed=seed))
        write_task_csv(rows, out)
    return rows

