"""CPU selective-scan benchmark: the chunked PyTorch backend against the sequential reference.

Default problem (issue 3): batch 2, dim 256, d_state 16, length 4096, fp32 inputs, with D, z gating,
delta bias and softplus (what a Mamba layer passes); ``--plain`` times the bare scan. Timings are
wall-clock (``time.perf_counter``) with the two backends interleaved repeat by repeat, so that load from
other processes hits both alike; we report the median and the minimum. The load average before and after
is recorded: on a shared 2-core VM, numbers taken under load are not comparable.

    python benchmarks/bench_scan_cpu.py                      # forward, no autograd
    python benchmarks/bench_scan_cpu.py --grad --backward    # also forward with autograd, forward+backward
    python benchmarks/bench_scan_cpu.py --json out.json

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

from genomamba.ops.selective_scan_chunked import _Plan, selective_scan_chunked
from genomamba.ops.selective_scan_ref import selective_scan_ref


def _inputs(batch, dim, d_state, length, requires_grad=False, seed=0, plain=False):
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
    if plain:  # the bare scan: no D, no gate, no bias, Δ used as given (small and positive)
        t = {k: v for k, v in t.items() if k not in ("D", "z", "delta_bias")}
        t["delta"] = torch.rand(batch, dim, length, generator=g) * 0.1 + 0.001
    return {k: v.requires_grad_(requires_grad) for k, v in t.items()}


def _call(fn, t, **kw):
    if "z" not in t:
        return fn(t["u"], t["delta"], t["A"], t["B"], t["C"], **kw)
    return fn(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], t["z"], t["delta_bias"], True, **kw)


def _time(fn, mode, t, dy):
    start = time.perf_counter()
    if mode == "fwd":
        with torch.no_grad():
            _call(fn, t)
    elif mode == "fwd_grad":
        _call(fn, t)
    else:
        y = _call(fn, t)
        torch.autograd.grad(y, [v for v in t.values()], dy)
    return time.perf_counter() - start


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


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--block-chunks", type=int, default=None)
    ap.add_argument("--plain", action="store_true", help="bare scan: no D, z, delta bias or softplus")
    ap.add_argument("--grad", action="store_true", help="also time the forward with autograd recording")
    ap.add_argument("--backward", action="store_true", help="also time forward+backward (reference is slow)")
    ap.add_argument("--json", help="write the results here as JSON")
    args = ap.parse_args(argv)

    size = (args.batch, args.dim, args.d_state, args.length)
    chunked = lambda *a, **k: selective_scan_chunked(  # noqa: E731
        *a, chunk_size=args.chunk_size, block_chunks=args.block_chunks, **k)
    backends = {"reference": selective_scan_ref, "chunked": chunked}
    plan = _Plan(args.batch, 1, args.dim, args.d_state, args.length, args.chunk_size, args.block_chunks)

    # correctness of this exact problem, against the fp32 reference
    t = _inputs(*size, plain=args.plain)
    with torch.no_grad():
        err = (_call(chunked, t) - _call(selective_scan_ref, t)).abs().max().item()

    modes = ["fwd"] + (["fwd_grad"] if args.grad else []) + (["fwd_bwd"] if args.backward else [])
    load_before = os.getloadavg()
    results = {}
    for mode in modes:
        t = _inputs(*size, requires_grad=(mode != "fwd"), plain=args.plain)
        dy = torch.randn(args.batch, args.dim, args.length)
        reps = args.repeats if mode != "fwd_bwd" else max(2, args.repeats // 3)
        for fn in backends.values():  # warm-up (allocator, thread pool)
            _time(fn, mode, t, dy)
        times = {name: [] for name in backends}
        for _ in range(reps):
            for name, fn in backends.items():
                times[name].append(_time(fn, mode, t, dy))
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        results[mode] = {
            "repeats": reps,
            "median_ms": {k: round(v * 1e3, 2) for k, v in med.items()},
            "min_ms": {k: round(v * 1e3, 2) for k, v in best.items()},
            "speedup_median": round(med["reference"] / med["chunked"], 1),
            "speedup_min": round(best["reference"] / best["chunked"], 1),
        }
        r, ms = results[mode], results[mode]["median_ms"]
        print(f"{mode:8s} reference {ms['reference']:9.1f} ms   chunked {ms['chunked']:8.1f} ms"
              f"   speed-up x{r['speedup_median']} (median), x{r['speedup_min']} (min)", file=sys.stderr)
    report = {
        "problem": {"batch": args.batch, "dim": args.dim, "d_state": args.d_state, "length": args.length,
                    "dtype": "float32", "gated": not args.plain},
        "chunked_plan": {"chunk_size": plan.T, "block_chunks": plan.K, "block_positions": plan.Lb,
                         "work_array_MiB": round(plan.Lb * plan.M * 4 / 2**20, 1)},
        "max_abs_diff_vs_reference": err,
        "results": results,
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
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
