"""Exceptions that carry the documented exit codes (DESIGN.md §2), shared by every command."""

from __future__ import annotations

import re
import sys

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # click's own code for bad options
EXIT_DATA = 65  # EX_DATAERR: the input data is invalid
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: no usable device or kernel, or too little memory, for the task
EXIT_CANTCREAT = 73  # EX_CANTCREAT: an output cannot be created (read-only, no permission, no such folder)
EXIT_IOERR = 74  # EX_IOERR: reading or writing failed part-way (disk full, quota, device error)
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: another genomamba process is writing the output; try again later
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout's reader went away (`| head`), as a shell reports it


class GenomambaError(Exception):
    """Base class; ``exit_code`` is what the command line exits with."""

    exit_code = EXIT_FAILURE


class InputDataError(GenomambaError):
    """Invalid input data. The message names the file, record, line and column where known."""

    exit_code = EXIT_DATA


class UnavailableError(GenomambaError):
    """No usable device or kernel for what was asked (e.g. --backend triton without a GPU)."""

    exit_code = EXIT_UNAVAILABLE


class UsageError(GenomambaError, ValueError):
    """Options that cannot work together (e.g. a BED input without a genome, a stride without a window).

    The command line shows it as click shows its own usage errors: the usage line, then the
    message, exit code 2. A ``ValueError`` too, as the library raised these before.
    """

    exit_code = EXIT_USAGE


# Substrings of the RuntimeError messages torch gives for a failed allocation (its CPU allocator
# raises a plain RuntimeError; CUDA raises torch.OutOfMemoryError, a RuntimeError subclass, or in
# some paths a plain "CUDA error: out of memory").
_ALLOCATION_FAILED = ("can't allocate memory", "out of memory", "Cannot allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed memory allocation: MemoryError, torch's OutOfMemoryError (CUDA),
    or the RuntimeError of torch's CPU allocator. Never imports torch: a process that has not
    imported it cannot have got one of its errors."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    out_of_memory = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if out_of_memory is not None and isinstance(exc, out_of_memory):
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in _ALLOCATION_FAILED)


def out_of_memory_detail(exc: BaseException) -> tuple[str, bool]:
    """``(what could not be allocated, whether on a GPU)`` for an error :func:`is_out_of_memory`
    accepts, in one short phrase ("" when the error says nothing)."""
    text = " ".join(str(exc).split())
    gpu = "CUDA" in text or type(exc).__name__ == "OutOfMemoryError"
    if gpu:  # torch's message goes on with allocator statistics and settings: keep the first sentences
        kept = []
        for sentence in re.split(r"(?<=\.) ", text):
            kept.append(sentence)
            if "free" in sentence or len(kept) == 3:
                break
        return " ".join(kept), True
    if match := re.search(r"tried to allocate (\d+) bytes", text):  # torch's CPU allocator
        return f"could not allocate {format_bytes(int(match.group(1)))}", False
    return text, False  # numpy's "Unable to allocate 728. TiB for an array with shape ...", or ""


def format_bytes(n: float) -> str:
    """``n`` bytes for people, as every message of genomamba says a size: ``1.5 GiB``, ``512 bytes``."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"
