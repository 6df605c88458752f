"""One writer per output: an advisory lock beside each output, and the removal of the temporaries
that killed runs left there.

Two processes writing the same output would race: each writes its own temporary and renames it
into place, both exit 0, and the first one's result is gone. So a command holds an exclusive
``flock`` on a lock file beside its output (``.NAME.lock`` for ``NAME``, a directory or a file)
for as long as it writes; a second writer does not wait but stops with :class:`OutputBusyError`
(exit 75, ``EX_TEMPFAIL``: try again later) naming the holder's pid. Writers that are meant to
share an output (benchmark processes appending to one ``results.csv``, fetches recording digests
in one lock file) take the same lock with ``wait=True`` around each short update instead.

The lock file holds the holder's pid (and host) and is removed when the lock is released; the
kernel releases the lock itself when the process dies, however it dies, so a killed writer never
blocks the next one. Locks are advisory (only genomamba's writers take them) and need ``fcntl``
(Linux, macOS); elsewhere no lock is taken.

Stale temporaries: every temporary name carries its writer's pid (:mod:`genomamba.io.atomic`:
``DIR.tmp-PID``, ``.NAME.tmp-PID...``; ``DIR.old-PID`` while a token-shard directory is swapped).
A process killed by SIGKILL leaves them behind. Whoever holds an output's lock next removes those
of that output whose pid is not a live process: holding the lock is what makes this safe (a live
writer of the same output would hold it), and the pid test keeps the temporary of any live process
(a pid reused by an unrelated process only means that a stale temporary waits for a later run).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from genomamba.errors import EXIT_TEMPFAIL, GenomambaError
from genomamba.io.atomic import TEMPORARY_NAME
from genomamba.io.directories import make_directories, remove_empty

try:
    import fcntl
except ImportError:  # Windows: no flock; outputs are not protected against a second writer
    fcntl = None

#: How deep inside an output directory temporaries are looked for (run directories keep theirs in
#: ``checkpoints/`` and ``seed-N/``, one or two levels down).
_INSIDE_DEPTH = 3

_log = logging.getLogger("genomamba.io")


class OutputBusyError(GenomambaError):
    """Another process holds the lock of the output this one was asked to write."""

    exit_code = EXIT_TEMPFAIL


def lock_file(output: str | os.PathLike) -> Path:
    """The lock file of ``output``: ``.NAME.lock`` in the directory that really holds it (symbolic
    links resolved, so that two spellings of one output share one lock)."""
    real = Path(os.path.realpath(output))
    return real.with_name(f".{real.name}.lock")


def _lockable(output: Path) -> bool:
    # '-' is stdout; a device or pipe (/dev/null, /dev/stdout) is no file to protect, and its
    # directory is not ours to create a lock file in.
    if str(output) == "-" or fcntl is None:
        return False
    return not output.exists() or output.is_file() or output.is_dir()


@contextlib.contextmanager
def output_lock(
    output: str | os.PathLike,
    *,
    wait: bool = False,
    clean: bool = True,
    note: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the lock of ``output`` (a file or a directory, existing or not) for the block.

    Args:
        wait: wait for the holder to finish (writers that share an output) instead of raising.
        clean: once the lock is held, remove the temporaries of ``output`` left by dead processes
            (:func:`remove_stale_temporaries`), saying so in one line to ``note``.
        note: receives that line (default: the ``genomamba.io`` logger's warning).

    Missing parent directories are created, and removed again on leaving if the block left
    ``output`` unwritten and them empty.

    Raises:
        OutputBusyError: another process holds the lock (only when ``wait`` is False).
        OSError: the lock file cannot be created (a read-only or missing place), naming ``output``.
    """
    output = Path(output)
    if not _lockable(output):
        yield
        return
    path = lock_file(output)
    created = make_directories(path.parent)
    try:
        fd = _acquire(path, output, wait)
    except BaseException:
        remove_empty(created)
        raise
    try:
        if clean:
            remove_stale_temporaries(output, note=note)
        yield
    finally:
        # Removed while still held: a process that opened this file meanwhile finds, once it gets
        # the lock, that the path no longer names it, and starts again (see _acquire).
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        if not output.exists():
            remove_empty(created)


@contextlib.contextmanager
def output_locks(outputs: Sequence[str | os.PathLike | None], **options) -> Iterator[None]:
    """:func:`output_lock` on each output given (None and repeats left out), in a fixed order."""
    unique = {os.path.realpath(p): p for p in outputs if p is not None and str(p) != "-"}
    with contextlib.ExitStack() as stack:
        for key in sorted(unique):
            stack.enter_context(output_lock(unique[key], **options))
        yield


def _acquire(path: Path, output: Path, wait: bool) -> int:
    """The open, locked lock file's descriptor, with this process's pid written in it."""
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except FileNotFoundError:  # a finishing holder removed the parent it had created: make it again
            make_directories(path.parent)
            continue
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(output)) from None  # the output, not the lock file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise OutputBusyError(
                f"another genomamba process is writing {output} ({holder}); wait for it or choose "
                "another output"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            data = f"{os.getpid()} {socket.gethostname()}\n".encode()
            os.pwrite(fd, data, 0)  # before truncating: a reader never sees an empty file
            os.ftruncate(fd, len(data))
            return fd
        os.close(fd)  # the holder removed this file as it finished: lock the one there now
    raise OSError(errno.EAGAIN, "the lock file keeps changing", str(path))


def _holder(fd: int) -> str:
    """``pid N`` (``pid N on HOST`` from another machine) as written in the lock file."""
    try:
        fields = os.pread(fd, 512, 0).decode("utf-8", "replace").split()
    except OSError:
        fields = []
    if not fields:
        return "pid unknown"
    if len(fields) > 1 and fields[1] != socket.gethostname():
        return f"pid {fields[0]} on {fields[1]}"
    return f"pid {fields[0]}"


# -- stale temporaries ------------------------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts; another user's process counts)."""
    if pid <= 0:
        return True  # 0 and negative pids name process groups: never treat them as dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # larger than any pid
        return False
    return True


def _stale(match: re.Match | None) -> bool:
    if match is None:
        return False
    pid = int(match["pid"])
    return pid != os.getpid() and not pid_alive(pid)


def remove_stale_temporaries(
    output: str | os.PathLike, *, note: Callable[[str], None] | None = None
) -> list[Path]:
    """Remove the temporaries of ``output`` whose writer is dead; call it holding the output's lock.

    Looked for: ``NAME.tmp-PID`` and ``.NAME.tmp-PID...`` beside ``output``; ``NAME.old-PID`` beside
    it (the previous token-shard directory, moved aside while the new one is renamed into place:
    removed when ``output`` exists, renamed back to ``output`` when the kill came between the two
    renames); and, when ``output`` is a directory, hidden ``.X.tmp-PID...`` entries inside it up to
    three levels down. Says what it did in one line to ``note``.

    Returns:
        The paths removed (or restored).
    """
    output = Path(output)
    parent = output.parent if str(output.parent) else Path(".")
    done: list[Path] = []
    restored = None
    try:
        siblings = sorted(parent.iterdir())
    except OSError:
        siblings = []
    for entry in siblings:
        match = TEMPORARY_NAME.match(entry.name)
        if not _stale(match) or match["name"] != output.name:
            continue
        if match["kind"] == "old":
            if match["hidden"]:
                continue
            if not output.exists() and not output.is_symlink():
                os.replace(entry, output)  # killed between the two renames: the old one is the output
                restored = entry
                done.append(entry)
                continue
        if _remove(entry):
            done.append(entry)
    if output.is_dir() and not output.is_symlink():
        done += _remove_inside(output)
    if done:
        (note or _log.warning)(_summary(output, done, restored))
    return done


def _summary(output: Path, done: list[Path], restored: Path | None) -> str:
    """One line: what was removed (or restored), and the dead writers' pids."""
    pids = ", ".join(sorted({TEMPORARY_NAME.match(p.name)["pid"] for p in done}, key=int))
    removed = [p for p in done if p != restored]
    parts = [f"restored {output} from {restored.name}"] if restored is not None else []
    if removed:
        shown = ", ".join(os.path.relpath(p, output.parent) for p in removed[:3])
        shown += f" and {len(removed) - 3} more" if len(removed) > 3 else ""
        noun = "temporary" if len(removed) == 1 else "temporaries"
        parts.append(f"removed {len(removed)} {noun} of {output}: {shown}")
    return "; ".join(parts) + f" (left by killed run(s), pid {pids})"


def _remove_inside(directory: Path) -> list[Path]:
    removed = []
    top = len(directory.parts)
    for root, dirs, files in os.walk(directory):
        here = Path(root)
        for name in [*dirs, *files]:
            match = TEMPORARY_NAME.match(name)
            ours = match is not None and match["hidden"] and match["kind"] == "tmp"
            if ours and _stale(match) and _remove(here / name):
                removed.append(here / name)
        # not into what was removed, nor deeper than needed
        dirs[:] = [d for d in dirs if (here / d).is_dir() and len(here.parts) - top < _INSIDE_DEPTH - 1]
    return removed


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True
