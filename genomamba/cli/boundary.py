"""The error boundary of every command: each failure as one line and a documented exit code.

Commands raise; none prints its own errors. The project's own errors
(:class:`~genomamba.errors.GenomambaError`: invalid input, no device, an output another process is
writing, ...) become ``error: <message>`` and their ``exit_code``; a
:class:`~genomamba.errors.UsageError` is shown as click shows its own (:func:`usage_error`: the
usage line, then the message, exit 2). Under ``torchrun`` each process says which rank it is
(``error: rank 1: ...``). The rest is what the operating system or the memory allocator says: an
output on a read-only file system, a full disk, a reader of stdout that went away, memory that
cannot be allocated. Each becomes one ``error:`` line on stderr that names the path or the
resource and what to do, and a documented exit code (:mod:`genomamba.errors`):

    73   an output cannot be created: read-only file system, permission denied, no such folder,
         a directory where a file should be, a name too long
    74   reading or writing failed part-way: disk full, quota exceeded, device (I/O) error
    69   not enough memory: host memory, or the GPU's (torch's CUDA out-of-memory error)
    141  stdout was closed by its reader (``genomamba ... | head``): no message, as for any Unix
         tool killed by SIGPIPE

Outputs are written to temporaries that are removed on failure (:mod:`genomamba.io.atomic`), so
when the boundary runs nothing partial is left, and earlier outputs are untouched. Torch is never
imported here: an error of torch can only come from a process that has imported it already.
"""

from __future__ import annotations

import errno
import os
import re
import sys

import click

from genomamba.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_CANTCREAT,
    EXIT_IOERR,
    EXIT_UNAVAILABLE,
    GenomambaError,
    UsageError,
    is_out_of_memory,
    out_of_memory_detail,
)
from genomamba.io.atomic import TEMPORARY_NAME

#: The exit codes of the boundary, for the end of each command's --help.
SYSTEM_EXIT_CODES = """

As for every command: 69 out of memory (host or GPU); 73 an output cannot be created (read-only
file system, permission denied, no such folder); 74 writing failed (disk full, I/O error); 75
another genomamba process is writing the same output; 141 stdout closed by its reader (| head).
Each is one error: line naming the path or resource."""

#: ``ctx.meta`` key under which a command's context leaves itself (ctx.meta is shared by the group's
#: context and the command's), so that the boundary can name the command's outputs and options.
CONTEXT_KEY = "genomamba.command_context"
#: Parameters of the commands that name an output (file or directory).
OUTPUT_PARAMETERS = ("out", "out_dir", "track_out")
#: Options that lower the memory a command needs, in the order they are suggested.
MEMORY_OPTIONS = ("batch_size", "window", "seq_len")

_WHAT_TO_DO = {
    errno.EROFS: "read-only file system; write the output to a writable location",
    errno.EACCES: "permission denied; check the permissions or write the output elsewhere",
    errno.EPERM: "operation not permitted; check the permissions or write the output elsewhere",
    errno.ENOENT: "no such file or directory; check that the folder exists",
    errno.ENOTDIR: "a part of the path is not a directory; check the path",
    errno.EISDIR: "is a directory; name a file",
    errno.EEXIST: "already exists; remove it or choose another output",
    errno.ENAMETOOLONG: "file name too long; choose a shorter path",
    errno.ELOOP: "too many levels of symbolic links; check the path",
    errno.ENOSPC: "no space left on device; free some space or write the output elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write the output elsewhere",
    errno.EFBIG: "file too large for this file system; write the output elsewhere",
    errno.EIO: "input/output error (a failing disk or an unreachable network file system?)",
}
_CANNOT_CREATE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR,
                            errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP})
_OUT_OF_RESOURCES = frozenset({errno.ENOMEM, errno.EMFILE, errno.ENFILE})

_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")

class CommandContext(click.Context):
    """A command's context that records itself in ``meta`` for :func:`report`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.meta[CONTEXT_KEY] = self


def report(
    exc: BaseException, command: click.Context | None, *, writing_stdout: bool | None = None
) -> int | None:
    """Print the one-line message for ``exc`` and return its exit code; None when ``exc`` is not a
    failure the boundary knows (it then propagates as a bug, with its traceback).

    ``command`` is the failed command's context (its parameters name the outputs and the options
    that lower memory use), or None. ``writing_stdout``: whether ``exc`` came from writing stdout
    (None: find out from where it was raised).
    """
    if isinstance(exc, GenomambaError):
        return _say(str(exc), exc.exit_code)
    params = command.params if command is not None else {}
    if is_out_of_memory(exc):
        return _say(_memory_message(exc, command), EXIT_UNAVAILABLE)
    if not isinstance(exc, OSError):
        exc = _wrapped_os_error(exc)
        if exc is None:
            return None
    stdout_broken = _raised_writing_stdout(exc) if writing_stdout is None else writing_stdout
    if stdout_broken:
        _silence_stdout()  # or the interpreter's own flush at exit fails again and prints
    if exc.errno == errno.EPIPE and stdout_broken:
        return EXIT_BROKEN_PIPE  # the reader has all it wanted: nothing to say
    where = _shown_path(exc.filename) if exc.filename else None
    if where is None:
        where = "standard output" if stdout_broken else _outputs(params) or "an output"
    if exc.filename2:
        where += f" -> {_shown_path(exc.filename2)}"
    what = _WHAT_TO_DO.get(exc.errno) or (exc.strerror or str(exc)).lower()
    if exc.errno in _OUT_OF_RESOURCES:
        return _say(f"{where}: {what}", EXIT_UNAVAILABLE)
    return _say(f"{where}: {what}", EXIT_CANTCREAT if exc.errno in _CANNOT_CREATE else EXIT_IOERR)


def usage_error(exc: UsageError, command: click.Context | None) -> click.UsageError:
    """``exc`` as click's own usage error of ``command`` (the failed command's context, or None):
    click prints the command's usage line, then the message, and exits 2."""
    return click.UsageError(str(exc), ctx=command)


def _wrapped_os_error(exc: BaseException) -> OSError | None:
    """The OSError inside a library's own exception: safetensors (Rust) reports a full disk as
    ``SafetensorError('... I/O error: No space left on device (os error 28)')``."""
    match = _RUST_OS_ERROR.search(str(exc))
    if match is None:
        return None
    number = int(match.group(1))
    return OSError(number, os.strerror(number))


def _say(message: str, code: int) -> int:
    try:
        click.echo(f"error: {_rank()}{' '.join(message.split())}", err=True)
    except OSError:  # stderr itself is gone: the exit code is all that is left to tell
        pass
    return code


def _rank() -> str:
    """``rank N: `` in one of several processes started by ``torchrun`` (each prints its own
    errors; its environment says who it is), else nothing."""
    try:
        several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return ""
    return f"rank {os.environ.get('RANK', '?')}: " if several else ""


def _memory_message(exc: BaseException, command: click.Context | None) -> str:
    detail, gpu = out_of_memory_detail(exc)
    names = [p.name for p in command.command.params] if command is not None else []
    smaller = [f"--{name.replace('_', '-')}" for name in MEMORY_OPTIONS if name in names]
    advice = f"try a smaller {' or '.join(smaller)}" if smaller else "free some memory"
    if gpu and "device" in names:
        advice += ", or --device cpu"
    resource = "GPU memory" if gpu else "memory"
    return f"out of {resource}{': ' + detail if detail else ''}; {advice}"


def _outputs(params: dict) -> str:
    values = [str(params[name]) for name in OUTPUT_PARAMETERS if params.get(name) not in (None, "-")]
    return " or ".join(values)


def _shown_path(path: str | bytes | os.PathLike) -> str:
    """``path`` with the temporaries it passes through shown as what they become."""
    parts = [(m.group("name") if (m := TEMPORARY_NAME.match(part)) else part)
             for part in os.fsdecode(path).split(os.sep)]
    return os.sep.join(parts)


def _raised_writing_stdout(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while ``click.echo`` wrote to stdout (every command writes its
    stdout through it). A failed write leaves no trace on the stream itself (the buffered bytes are
    dropped), so the place it was raised from is what tells."""
    traceback = exc.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code.co_name == "echo" and frame.f_globals.get("__name__") == "click.utils":
            return _is_stdout(frame.f_locals.get("file"))
        traceback = traceback.tb_next
    return False


def _is_stdout(stream) -> bool:
    if stream is None:
        return False
    if stream is sys.stdout or stream is sys.__stdout__:
        return True
    try:  # click may wrap stdout's buffer in a text stream of its own
        return stream.fileno() == sys.__stdout__.fileno()
    except (AttributeError, OSError, ValueError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null (Python's documented way out of a broken stdout)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (a test runner's buffer): nothing to silence
        pass
