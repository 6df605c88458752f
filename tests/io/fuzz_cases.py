"""What the reader fuzz tests (tests/io/test_fuzz_readers.py) share: the Hypothesis profile, the
compressions a valid file is written in, the ways a file is damaged, and a guard against hangs.

Bounded for CI: ``max_examples`` per test comes from ``GENOMAMBA_FUZZ_EXAMPLES`` (default 200) and
the examples are derandomized, so every run tries the same inputs; set the variable higher (and
``GENOMAMBA_FUZZ_SEED`` to another seed) to search longer by hand, e.g.
``GENOMAMBA_FUZZ_EXAMPLES=5000 GENOMAMBA_FUZZ_SEED=1 pytest tests/io/test_fuzz_readers.py``.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import signal
from datetime import timedelta

from Bio import bgzf
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("GENOMAMBA_FUZZ_EXAMPLES", "200"))
#: A hand-run with another seed explores other inputs; CI runs seed 0 (derandomized).
SEED = int(os.environ.get("GENOMAMBA_FUZZ_SEED", "0"))
#: Longer than any example takes on a loaded CI machine; shorter than pytest's patience.
HANG_SECONDS = 20

settings.register_profile(
    "genomamba-fuzz",
    max_examples=EXAMPLES,
    derandomize=SEED == 0,
    database=None,  # nothing written into the work tree; derandomized runs need no replay database
    deadline=timedelta(seconds=5),  # one example reads a few kB: seconds mean something is wrong
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
FUZZ = settings(settings.get_profile("genomamba-fuzz"))


def seeded(test):
    """The test with ``GENOMAMBA_FUZZ_SEED`` as its seed when one is set (derandomized otherwise)."""
    from hypothesis import seed

    return seed(SEED)(test) if SEED else test


class Hang(Exception):
    """An example ran past :data:`HANG_SECONDS`."""


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS):
    """Fail (raise :class:`Hang`) if the block runs longer than ``seconds`` (SIGALRM, main thread)."""

    def alarm(signum, frame):
        raise Hang(f"still running after {seconds} s: the reader hangs on this input")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- valid files, compressed -------------------------------------------------------------------------

COMPRESSIONS = ("plain", "gzip", "gzip-members", "bgzf", "xz", "bz2")


def compress(data: bytes, kind: str, split: int = 0) -> bytes:
    """``data`` as a file of compression ``kind``; ``gzip-members`` cuts it at ``split`` into two members."""
    if kind == "plain":
        return data
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "gzip-members":
        cut = split % (len(data) + 1)
        return gzip.compress(data[:cut], mtime=0) + gzip.compress(data[cut:], mtime=0)
    if kind == "bgzf":
        buffer = io.BytesIO()
        writer = bgzf.BgzfWriter(fileobj=buffer)
        writer.write(data)
        writer.flush()
        buffer.write(bgzf._bgzf_eof)  # BgzfWriter.close() would close the buffer too
        return buffer.getvalue()
    if kind == "xz":
        return lzma.compress(data)
    if kind == "bz2":
        return bz2.compress(data)
    raise ValueError(kind)


# -- damage -------------------------------------------------------------------------------------------

#: first bytes of other formats, put in front of (or over) a file's own
WRONG_HEADERS = (
    b"\x1f\x8b",  # gzip magic alone
    b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00",  # a BGZF member header, no data
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff",  # a gzip header, no deflate data
    b"\xfd7zXZ\x00",  # xz
    b"BZh9",  # bzip2
    b"\x28\xb5\x2f\xfd",  # zstd
    b"\xef\xbb\xbf",  # a UTF-8 byte-order mark
    b"PAR1",  # parquet
    b"\x00\x00\x00\x00",
)

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 30)),
    st.tuples(st.just("insert-line"), st.integers(0, 1 << 30), st.binary(max_size=40)),
    st.tuples(st.just("insert-text-line"), st.integers(0, 1 << 30),
              st.text(st.characters(codec="utf-8"), max_size=40)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 30), st.integers(1, 64)),
    st.tuples(st.just("duplicate"), st.integers(0, 1 << 30), st.integers(1, 64)),
    st.tuples(st.just("wrong-header"), st.sampled_from(WRONG_HEADERS), st.booleans()),
    st.tuples(st.just("random"), st.binary(max_size=300)),
)


def _apply(data: bytes, mutation: tuple) -> bytes:
    kind, n = mutation[0], len(data)
    if kind == "flip":
        if not n:
            return data
        at = mutation[1] % n
        return data[:at] + bytes([data[at] ^ mutation[2]]) + data[at + 1 :]
    if kind == "truncate":
        return data[: mutation[1] % (n + 1)]
    if kind in ("insert-line", "insert-text-line"):
        line = mutation[2] if kind == "insert-line" else mutation[2].encode("utf-8")
        starts = [0] + [i + 1 for i, b in enumerate(data) if b == 10]
        at = starts[mutation[1] % len(starts)]
        return data[:at] + line + b"\n" + data[at:]
    if kind == "delete":
        at = mutation[1] % (n + 1)
        return data[:at] + data[at + mutation[2] :]
    if kind == "duplicate":
        at = mutation[1] % (n + 1)
        return data[:at] + data[at : at + mutation[2]] + data[at:]
    if kind == "wrong-header":
        header, replace = mutation[1], mutation[2]
        return header + (data[len(header) :] if replace else data)
    if kind == "random":
        return mutation[1]
    raise ValueError(kind)


def damaged(data: bytes, mutations: list[tuple]) -> bytes:
    for mutation in mutations:
        data = _apply(data, mutation)
    return data


mutations = st.lists(_mutation, min_size=1, max_size=3)
