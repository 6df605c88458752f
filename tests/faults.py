"""Faults injected into the file system for tests: writes refused below a folder, as on a read-only
mount or a folder without write permission, whoever runs the tests (permission bits do not stop
root, and CI containers often run as root)."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def is_inside(path, root: str | os.PathLike) -> bool:
    """Whether ``path`` (a str, bytes or path; a file descriptor never is) is ``root`` or lies below it."""
    if isinstance(path, int):  # a file descriptor: its path is not known here
        return False
    try:
        real = os.path.realpath(os.fsdecode(path))
    except TypeError:
        return False
    root = os.path.realpath(root)
    return real == root or real.startswith(root + os.sep)


def refuse_writes(monkeypatch, root: str | os.PathLike | Path, code: int = errno.EROFS) -> None:
    """Opening a file for writing, making a folder or renaming onto ``root`` or a path below it fails
    with OSError ``code`` (EROFS: a read-only mount; EACCES: no write permission)."""
    root = os.path.realpath(root)

    def refuse(path):
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    real_os_open, real_open, real_mkdir, real_replace = os.open, builtins.open, os.mkdir, os.replace

    def os_open(path, flags, *args, **kwargs):
        if flags & WRITE_FLAGS and is_inside(path, root):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and is_inside(file, root):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if is_inside(path, root):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        if is_inside(dst, root):
            refuse(dst)
        return real_replace(src, dst, *args, **kwargs)

    for module, name, fake in ((os, "open", os_open), (builtins, "open", open_), (io, "open", open_),
                               (os, "mkdir", mkdir), (os, "replace", replace)):
        monkeypatch.setattr(module, name, fake)
