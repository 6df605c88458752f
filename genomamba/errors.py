"""Exceptions that carry the documented exit codes (DESIGN.md §2), shared by every command."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # click's own code for bad options
EXIT_DATA = 65  # EX_DATAERR: the input data is invalid
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: no usable device or kernel for what was asked


class GenomambaError(Exception):
    """Base class; ``exit_code`` is what the command line exits with."""

    exit_code = EXIT_FAILURE


class InputDataError(GenomambaError):
    """Invalid input data. The message names the file, record, line and column where known."""

    exit_code = EXIT_DATA


class UnavailableError(GenomambaError):
    """No usable device or kernel for what was asked (e.g. --backend triton without a GPU)."""

    exit_code = EXIT_UNAVAILABLE
