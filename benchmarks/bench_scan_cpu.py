"""CPU selective-scan benchmark: the chunked PyTorch backend against the sequential reference.

Problems: batch x dim x d_state x length, fp32 inputs, with D, z gating, delta bias and softplus (what a
Mamba layer passes). The default cases are issue 3's (2 x 256 x 16 x 4096) and a few others (lengths 1000
and 16384, batch 1); ``--case B,D,N,L`` replaces them.

Time: wall-clock (``time.perf_counter``) of one call, after one warm-up call of each backend, the two
backends interleaved repeat by repeat so that load from other processes hits both alike; we report the
median and the minimum. ``fwd`` runs under ``torch.no_grad()``; ``fwd_bwd`` runs the forward with every
input requiring grad and ``torch.autograd.grad`` for all of them. The 1-minute load average before and
after each case is recorded: on a shared 2-core VM, timings taken under load are not comparable.

Memory: torch allocates outside Python's heap, so ``tracemalloc`` cannot see it. Each (case, backend, mode)
runs once more in a fresh interpreter (``--memory-child``) that builds the inputs (and the upstream
gradient), resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), makes one call, and reads the
peak (``VmHWM``): peak minus the RSS before the call is the resident memory that call added on top of its
inputs, outputs and gradients included. It counts pages, not tensors (an allocator may keep freed pages, and
pages first touched by the call count even if reused), and it does not depend on timing. ``ru_maxrss`` was
not used: in a child started by fork + exec it begins at the parent's RSS. Linux only.

    python benchmarks/bench_scan_cpu.py --json /tmp/scan-cpu.json
    python benchmarks/bench_scan_cpu.py --case 2,256,16,4096 --modes fwd --repeats 9 --no-memory

Never run as a test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from genomamba.ops._chunked_blocks import _Plan
from genomamba.ops.selective_scan_chunked import selective_scan_chunked
from genomamba.ops.selective_scan_ref import selective_scan_ref

CASES = [(2, 256, 16, 4096), (2, 256, 16, 1000), (2, 256, 16, 16384), (1, 256, 16, 4096)]
BACKENDS = {"reference": selective_scan_ref, "chunked": selective_scan_chunked}
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def _inputs(batch, dim, d_state, length, requires_grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = {
        "u": torch.randn(batch, dim, length, generator=g),
        "delta": torch.randn(batch, dim, length, generator=g) * 0.5 - 1.0,
        "A": -torch.exp(torch.randn(dim, d_state, generator=g)),
        "B": torch.randn(batch, d_state, length, generator=g),
        "C": torch.randn(batch, d_state, length, generator=g),
        "D": torch.randn(dim, generator=g),
        "z": torch.randn(batch, dim, length, generator=g),
        "delta_bias": torch.randn(dim, generator=g) * 0.1,
    }
    dy = torch.randn(batch, dim, length, generator=g)
    return {k: v.requires_grad_(requires_grad) for k, v in t.items()}, dy


def _call(fn, t):
    return fn(*(t[k] for k in NAMES), True)


def _run(fn, mode, t, dy):
    if mode == "fwd":
        with torch.no_grad():
            return _call(fn, t), None
    y = _call(fn, t)
    return y, torch.autograd.grad(y, [t[k] for k in NAMES], dy)


def _time(fn, mode, t, dy) -> float:
    start = time.perf_counter()
    _run(fn, mode, t, dy)
    return time.perf_counter() - start


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _memory_child(backend: str, mode: str, case: tuple[int, ...]) -> None:
    t, dy = _inputs(*case, requires_grad=mode != "fwd")
    # Reset the peak-RSS counter to the current RSS (Linux >= 4.0), so the peak is this call's alone.
    # (ru_maxrss would not do: after fork + exec it starts from the parent's RSS.)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    _run(BACKENDS[backend], mode, t, dy)
    peak = _status_kib("VmHWM")
    print(json.dumps({"base_MiB": round(base / 1024, 1), "added_MiB": round((peak - base) / 1024, 1)}))


def _memory(backend: str, mode: str, case: tuple[int, ...]) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", backend, mode, ",".join(map(str, case))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _errors(t, dy) -> dict:
    """Chunked against the fp32 reference on this problem: output and every input gradient."""
    ref_y, ref_g = _run(selective_scan_ref, "fwd_bwd", t, dy)
    y, g = _run(selective_scan_chunked, "fwd_bwd", t, dy)
    out = {"y": (y - ref_y).abs().max().item() / ref_y.abs().max().item()}
    for k, a, b in zip(NAMES, g, ref_g, strict=True):
        out["d" + k] = (a - b).abs().max().item() / b.abs().max().item()
    return {k: float(f"{v:.2g}") for k, v in out.items()}


def _commit() -> str:
    try:
        def git(*cmd):
            return subprocess.run(["git", *cmd], capture_output=True, text=True, check=True).stdout.strip()

        dirty = git("status", "--porcelain", "--", "genomamba/ops")
        return git("rev-parse", "--short", "HEAD") + ("+dirty(genomamba/ops)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _bench_case(case, modes, repeats, memory) -> dict:
    b, d, n, L = case
    plan = _Plan(b, 1, d, n, L, None, None)
    res = {"batch": b, "dim": d, "d_state": n, "length": L,
           "chunked_plan": {"chunk_size": plan.T, "block_chunks": plan.K, "span_positions": plan.Ls},
           "loadavg_before": round(os.getloadavg()[0], 2)}
    for mode in modes:
        t, dy = _inputs(*case, requires_grad=mode != "fwd")
        reps = repeats if mode == "fwd" or L <= 4096 else max(1, repeats // 3)
        for fn in BACKENDS.values():  # warm-up (allocator, thread pool, lazy initialisation)
            _time(fn, mode, t, dy)
        times = {name: [] for name in BACKENDS}
        for _ in range(reps):
            for name, fn in BACKENDS.items():
                times[name].append(_time(fn, mode, t, dy))
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        r = res[mode] = {
            "repeats": reps,
            "median_ms": {k: round(v * 1e3, 2) for k, v in med.items()},
            "min_ms": {k: round(v * 1e3, 2) for k, v in best.items()},
            "speedup_median": round(med["reference"] / med["chunked"], 1),
            "speedup_min": round(best["reference"] / best["chunked"], 1),
        }
        if memory:
            r["peak_added_MiB"] = {k: _memory(k, mode, case)["added_MiB"] for k in BACKENDS}
        ms = r["median_ms"]
        print(f"{b}x{d}x{n}x{L} {mode:7s} reference {ms['reference']:9.1f} ms   "
              f"chunked {ms['chunked']:8.1f} ms   x{r['speedup_median']} (median), x{r['speedup_min']} (min)"
              + (f"   peak +MiB {r['peak_added_MiB']}" if memory else ""), file=sys.stderr, flush=True)
    t, dy = _inputs(*case, requires_grad=True)
    res["max_rel_diff_vs_reference"] = _errors(t, dy)
    res["loadavg_after"] = round(os.getloadavg()[0], 2)
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", help="B,D,N,L (repeatable); default: the four CASES")
    ap.add_argument("--modes", default="fwd,fwd_bwd")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-memory", action="store_true", help="skip the fresh-process peak-memory runs")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--memory-child", nargs=3, metavar=("BACKEND", "MODE", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        backend, mode, case = args.memory_child
        _memory_child(backend, mode, tuple(int(x) for x in case.split(",")))
        return {}

    cases = [tuple(int(x) for x in c.split(",")) for c in args.case] if args.case else CASES
    modes = args.modes.split(",")
    report = {
        "problem": "gated scan (D, z, delta bias, softplus), fp32 inputs; batch x dim x d_state x length",
        "timing": "wall clock, one warm-up, backends interleaved; fwd under no_grad, fwd_bwd = forward + "
                  "autograd.grad of all inputs",
        "memory": "peak RSS (VmHWM, reset before the call) minus RSS before one call, in a fresh process "
                  "with the inputs already built",
        "cases": [_bench_case(c, modes, args.repeats, not args.no_memory) for c in cases],
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "mkl": torch.backends.mkl.is_available(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "python": platform.python_version()},
        "commit": _commit(),
        "date": datetime.date.today().isoformat(),
    }
    text = json.dumps(report, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
