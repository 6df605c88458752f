"""Throughput and peak memory of `genomamba tokenize` on one CPU core.

Input: the 70 Mb human chrX FASTA (gzip) shipped by the Debian package smalt-examples
(usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz). It is not in git; fetch it once with

    mkdir -p /tmp/genomamba-bench && cd /tmp/genomamba-bench
    apt-get update && apt-get download smalt-examples && dpkg -x smalt-examples_*.deb x
    # -> x/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz

Each measurement is a fresh `genomamba tokenize` process pinned to one core (taskset), so the
numbers include interpreter start-up and imports. Reported per input:

* wall seconds (best of --repeat) and Mbases/s = bases / wall;
* peak RSS (ru_maxrss of the child) and, for contrast, the peak RSS of a process that only
  imports what tokenize imports (Python + numpy + pyarrow): the difference is the working set
  that depends on the data.

``--scaling`` also tokenises the plain FASTA and a plain FASTA holding the chromosome four
times (renamed records, ~280 MB): the peak RSS must not grow with the input.

Writes JSON to stdout (and to --json PATH). Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_INPUT = Path("/tmp/genomamba-bench/x/usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz")
_IMPORTS_ONLY = "import numpy, pyarrow, pyarrow.parquet, click, genomamba.io.tokenize"


def _pinned(cmd: list[str]) -> list[str]:
    return (["taskset", "-c", "0"] if shutil.which("taskset") else []) + cmd


def _run(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB) of that process alone."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(_pinned(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{process.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024


def measure(fasta: Path, repeat: int, window: int) -> dict:
    genomamba = shutil.which("genomamba") or str(Path(sys.executable).with_name("genomamba"))
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-tokenize-") as tmp:
        for i in range(repeat):
            out = Path(tmp) / f"out{i}"
            runs.append(_run([genomamba, "tokenize", str(fasta), "-o", str(out), "--window", str(window)]))
            manifest = json.loads((out / "manifest.json").read_text())
            shutil.rmtree(out)
    bases = manifest["totals"]["bases"]
    best_wall = min(w for w, _ in runs)
    return {
        "input": str(fasta),
        "input_bytes": fasta.stat().st_size,
        "compression": manifest["inputs"][0]["compression"],
        "bases": bases,
        "windows": manifest["totals"]["windows"],
        "wall_s": [round(w, 3) for w, _ in runs],
        "best_wall_s": round(best_wall, 3),
        "mbases_per_s": round(bases / best_wall / 1e6, 1),
        "peak_rss_mib": round(max(r for _, r in runs), 1),
    }


_COPIES = """
import gzip, sys
text = gzip.decompress(open(sys.argv[1], "rb").read())
body = text[text.index(b"\\n") + 1 :]
with open(sys.argv[2], "wb") as handle:
    for i in range(int(sys.argv[3])):
        handle.write(b">copy%d\\n" % (i + 1))
        handle.write(body)
"""


def _plain_copies(gz_path: Path, folder: Path, copies: int) -> Path:
    """The chromosome ``copies`` times in one plain FASTA, records renamed copy1, copy2, ...

    Made in a child process: the children measured later are forked from this process, and
    ru_maxrss counts the pages they share with it until they exec.
    """
    path = folder / f"x{copies}.fa"
    subprocess.run([sys.executable, "-c", _COPIES, str(gz_path), str(path), str(copies)], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fasta", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", type=int, default=1 << 20)
    parser.add_argument("--scaling", action="store_true", help="also run plain 1x and 4x inputs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not args.fasta.exists():
        raise SystemExit(f"{args.fasta} not found; see the module docstring for how to fetch it")
    _, imports_rss = _run([sys.executable, "-c", _IMPORTS_ONLY])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, pinned to 1 core",
        "imports_only_peak_rss_mib": round(imports_rss, 1),
        "runs": [measure(args.fasta, args.repeat, args.window)],
    }
    if args.scaling:
        with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
            for copies in (1, 4):
                path = _plain_copies(args.fasta, Path(tmp), copies)
                results["runs"].append(measure(path, args.repeat, args.window))
                path.unlink()
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
