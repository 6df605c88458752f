"""FASTA files -> token-shard directory (the library side of ``genomamba tokenize``).

Streaming end to end: records are read in blocks (:mod:`genomamba.io.fasta`), cut into windows
as they go (:class:`genomamba.io.windows.Windower`) and appended to shards
(:class:`genomamba.io.shards.ShardWriter`), so memory stays near ``window + block`` bytes
whatever the size of the input.

Atomicity: everything is written into ``DIR.tmp-<pid>`` next to ``DIR`` and renamed into place
at the end; on any error (bad input, ^C) the temporary directory is removed and ``DIR`` is left
as it was. An existing ``DIR`` whose manifest records the same inputs (sha256) and parameters
makes the call a no-op; other inputs or parameters are an error unless ``force=True``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from genomamba import __version__
from genomamba.alphabet import alphabet_description
from genomamba.errors import GenomambaError, InputDataError
from genomamba.io.compression import STDIN, display_name, sha256_file
from genomamba.io.fasta import FastaReader
from genomamba.io.records import ReadAsNTally
from genomamba.io.regions import RegionSelection
from genomamba.io.shards import (
    DEFAULT_SHARD_TOKENS,
    FORMAT,
    FORMAT_VERSION,
    INDEX,
    MANIFEST,
    ShardWriter,
    window_n_fraction,
)
from genomamba.io.windows import DEFAULT_WINDOW, SegmentWindower, check_window_parameters


@dataclass(frozen=True)
class TokenizeOptions:
    """Parameters recorded in the manifest; two runs with equal options and inputs are the same."""

    window: int = DEFAULT_WINDOW
    stride: int | None = None  # None: equal to window
    last_window: str = "keep"
    max_n_fraction: float = 1.0
    lenient: bool = False
    strict: bool = False
    rna: bool = False
    shard_tokens: int = DEFAULT_SHARD_TOKENS
    # samtools-style regions (genomamba.io.regions): read only these, or all but these
    regions: tuple[str, ...] = ()
    exclude_regions: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        # The region keys appear only when used, so directories made before they existed stay
        # up to date.
        selection = {"regions": list(self.regions)} if self.regions else {}
        if self.exclude_regions:
            selection["exclude_regions"] = list(self.exclude_regions)
        return {
            "window": self.window,
            "stride": self.stride or self.window,
            "last_window": self.last_window,
            "max_n_fraction": self.max_n_fraction,
            "lenient": self.lenient,
            "strict": self.strict,
            "rna": self.rna,
            "shard_tokens": self.shard_tokens,
            **selection,
        }


@dataclass
class TokenizeResult:
    directory: Path
    status: str  # "written" or "up-to-date"
    manifest: dict


def _identity(manifest: dict) -> dict:
    """The parts of a manifest that decide whether a re-run would produce the same directory."""
    return {
        "format_version": manifest.get("format_version"),
        "alphabet_version": manifest.get("alphabet", {}).get("version"),
        "inputs": [(i.get("sha256"), i.get("size")) for i in manifest.get("inputs", [])],
        "parameters": manifest.get("parameters"),
    }


def _read_manifest(directory: Path) -> dict | None:
    try:
        with open(directory / MANIFEST, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == FORMAT else None


def _complete(directory: Path, manifest: dict) -> bool:
    files = [INDEX] + [
        f for shard in manifest.get("shards", []) for f in (shard["tokens"], shard["softmask"])
    ]
    return all((directory / f).is_file() for f in files)


def _differences(old: dict, new: dict) -> str:
    changed = [key for key in new if old.get(key) != new.get(key)]
    if "parameters" in changed:
        params_old, params_new = old.get("parameters") or {}, new["parameters"]
        changed.remove("parameters")
        changed += [
            f"{k} {params_old.get(k)!r} -> {v!r}" for k, v in params_new.items() if params_old.get(k) != v
        ]
    return ", ".join(changed)


def tokenize_files(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: TokenizeOptions = TokenizeOptions(),
    *,
    force: bool = False,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> TokenizeResult:
    """Tokenise FASTA ``inputs`` (paths or ``-``) into the shard directory ``out_dir``.

    Args:
        options: window, stride, policies (see :class:`TokenizeOptions`).
        force: replace an existing directory made from other inputs or parameters.
        warn: receives warning messages (skipped records, ...).
        progress: called with the number of raw input bytes consumed since the last call.

    Returns:
        :class:`TokenizeResult` with ``status`` ``"written"`` or ``"up-to-date"``.

    Raises:
        InputDataError: invalid input (nothing is left behind).
        GenomambaError: ``out_dir`` exists with other inputs/parameters (without ``force``), or
            exists and is not a token-shard directory.
        ValueError: invalid options.
    """
    stride = options.stride or options.window
    check_window_parameters(options.window, stride, options.last_window)
    if not 0.0 <= options.max_n_fraction <= 1.0:
        raise ValueError(f"max_n_fraction must be within [0, 1], got {options.max_n_fraction}")
    if options.shard_tokens < 1:
        raise ValueError("shard_tokens must be positive")
    RegionSelection(options.regions, options.exclude_regions)  # a malformed region fails before any work
    if sum(str(p) == STDIN for p in inputs) > 1:
        raise ValueError("'-' (stdin) can be given only once")
    out = Path(out_dir)
    parameters = options.as_dict()
    wanted = {
        "format_version": FORMAT_VERSION,
        "alphabet_version": alphabet_description()["version"],
        "parameters": parameters,
    }

    existing = None
    if out.exists() or out.is_symlink():
        existing = _read_manifest(out) if out.is_dir() else None
        if existing is None and not (out.is_dir() and not any(out.iterdir())):
            raise GenomambaError(
                f"{out} exists and is not a genomamba token-shard directory; refusing to touch it"
            )
        if existing is not None and not force and _identity(existing)["parameters"] != parameters:
            diff = _differences(_identity(existing), {**wanted, "inputs": _identity(existing)["inputs"]})
            raise GenomambaError(
                f"{out} holds token shards made with other parameters ({diff}); pass --force to replace it"
            )
        if existing is not None and not any(str(p) == STDIN for p in inputs):
            inputs_now = [(sha256_file(p), os.path.getsize(p)) for p in inputs]
            same = _identity(existing) == {**wanted, "inputs": inputs_now}
            if same and _complete(out, existing):
                return TokenizeResult(out, "up-to-date", existing)
            if not force:
                diff = _differences(_identity(existing), {**wanted, "inputs": inputs_now})
                raise GenomambaError(
                    f"{out} holds token shards made from other inputs or parameters "
                    f"({diff or 'incomplete'}); pass --force to replace it"
                )

    tmp = out.parent / f"{out.name}.tmp-{os.getpid()}"
    try:
        tmp.mkdir(parents=True)
        manifest = _write_shards(inputs, tmp, options, warn, progress)
        if existing is not None and _identity(existing) == _identity(manifest) and _complete(out, existing):
            shutil.rmtree(tmp)  # stdin input turned out to be the same as before
            return TokenizeResult(out, "up-to-date", existing)
        if existing is not None and not force and _identity(existing) != _identity(manifest):
            diff = _differences(_identity(existing), _identity(manifest))
            raise GenomambaError(
                f"{out} holds token shards made from other inputs or parameters ({diff}); "
                "pass --force to replace it"
            )
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TokenizeResult(out, "written", manifest)


def _move_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f"{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)  # the new one cannot go in (disk full...): the previous one goes back
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _write_shards(
    inputs: Sequence[str | os.PathLike],
    directory: Path,
    options: TokenizeOptions,
    warn: Callable[[str], None] | None,
    progress: Callable[[int], None] | None,
) -> dict:
    stride = options.stride or options.window
    warn = warn or logging.getLogger("genomamba.io").warning
    writer = ShardWriter(directory, options.shard_tokens)
    selection = RegionSelection(options.regions, options.exclude_regions)
    lengths: dict[str, int] = {}  # record -> length, to check the regions against
    seen: dict[str, str] = {}  # record name -> "file line N", across inputs
    inputs_meta, records_meta, skipped_meta = [], [], []
    totals = {"records": 0, "bases": 0, "windows": 0, "windows_filtered_n": 0}
    for input_index, path in enumerate(inputs):
        with FastaReader(
            path, rna=options.rna, lenient=options.lenient, strict=options.strict, warn=warn
        ) as reader:
            reported = 0
            tally = ReadAsNTally()
            for record in reader.records():
                where = f"{reader.name} line {record.header_line}"
                if record.name in seen:
                    raise InputDataError(
                        f"record name '{record.name}' appears twice: {seen[record.name]} and {where}; "
                        "record names must be unique across inputs"
                    )
                seen[record.name] = where
                segments = selection.segments(record.name)
                windower = SegmentWindower(segments, options.window, stride, options.last_window)
                kept = filtered = 0
                for chunk in record.chunks():
                    for window in windower.feed(chunk.start, chunk.ids, chunk.softmask):
                        kept, filtered = _store(
                            writer, record.name, window, input_index, options, kept, filtered
                        )
                    if progress is not None:
                        progress(reader.input.raw_bytes_read - reported)
                        reported = reader.input.raw_bytes_read
                for window in windower.finish():
                    kept, filtered = _store(writer, record.name, window, input_index, options, kept, filtered)
                stats = record.stats
                lengths[record.name] = stats.length
                if not segments:  # a record no --region names: read past, not reported
                    continue
                if kept == 0 and filtered == 0:
                    warn(
                        f"{reader.name}: record '{record.name}' ({stats.length} bases) gave no window "
                        f"(--last-window {options.last_window})"
                    )
                meta = {"input": input_index, **stats.as_dict()}
                meta.update(windows=kept, windows_filtered_n=filtered)
                if selection:
                    meta["segments"] = [[a, stats.length if b is None else b] for a, b in segments]
                records_meta.append(meta)
                totals["records"] += 1
                totals["bases"] += _selected_bases(segments, stats.length)
                totals["windows"] += kept
                totals["windows_filtered_n"] += filtered
                tally.add(stats.encoding)
            tally.warn(reader.name, "records", warn)  # the manifest has the counts per record
            skipped_meta += [
                {
                    "input": input_index,
                    "record": s.name,
                    "header_line": s.header_line,
                    "reason": "no sequence",
                }
                for s in reader.skipped
            ]
            if progress is not None:
                progress(reader.input.raw_bytes_read - reported)
            size = reader.input.raw_bytes_read
            inputs_meta.append(
                {
                    "path": display_name(path),
                    "size": size,
                    "sha256": reader.sha256,
                    "compression": reader.compression,
                }
            )
    selection.check(lengths, ", ".join(i["path"] for i in inputs_meta))
    if totals["windows"] == 0:
        raise InputDataError(
            "no window was written: every window was filtered out "
            f"(--max-n-fraction {options.max_n_fraction}) or dropped (--last-window {options.last_window})"
        )
    shards = writer.close()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "genomamba_version": __version__,
        "alphabet": alphabet_description(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "coordinates": "0-based, half-open; only the '+' strand is stored ('-' is the reverse complement)",
        "inputs": inputs_meta,
        "parameters": options.as_dict(),
        "totals": {**totals, "tokens_stored": sum(s["n_tokens"] for s in shards)},
        "index": INDEX,
        "shards": shards,
        "records": records_meta,
        "skipped_records": skipped_meta,
    }
    # The manifest is written last: a directory with a manifest is a complete one.
    with open(directory / MANIFEST, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")
    return manifest


def _store(
    writer: ShardWriter,
    record: str,
    window,
    input_index: int,
    options: TokenizeOptions,
    kept: int,
    filtered: int,
) -> tuple[int, int]:
    n_fraction = window_n_fraction(window.ids, window.end - window.start)
    if n_fraction > options.max_n_fraction:
        return kept, filtered + 1
    writer.add(record, window.start, window.end, window.ids, window.softmask, input_index, n_fraction)
    return kept + 1, filtered


def _selected_bases(segments: list[tuple[int, int | None]], length: int) -> int:
    """Bases of a record of ``length`` that its segments cover (segments may run past a short record)."""
    return sum(max(0, min(length, length if b is None else b) - a) for a, b in segments)
