"""CPU selective-scan benchmark: the chunked PyTorch backend against the sequential reference.

Problems: batch x dim x d_state x length, fp32 inputs, with D, z gating, delta bias and softplus (what a
Mamba layer passes). The default cases are issue 3's (2 x 256 x 16 x 4096) and a few others (lengths 1000
and 16384, batch 1); ``--case B,D,N,L`` replaces them.

Time: wall-clock (``time.perf_counter``) of one call, after one warm-up call of each backend, the two
backends interleaved repeat by repeat so that load from other processes hits both alike; we report the
median and the minimum. ``fwd`` runs under ``torch.no_grad()``; ``fwd_bwd`` runs the forward with every
input requiring grad and ``torch.autograd.grad`` for all of them. The 1-minute load average before and
after each case is recorded: on a shared 2-core VM, timings taken under load are not comparable. The
reference's forward+backward is timed only up to ``--ref-bwd-max-length`` (4096): its autograd backward is
quadratic in the length (each step's slice backward writes a full-length gradient), minutes at 16384.
Accuracy: the chunked output and every input gradient against the fp32 reference on the same problem,
as max |difference| / max |reference|.

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
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from genomamba.ops._chunked_blocks import _Plan, _Scan, _Work
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


def _variants(b=2, d=256, n=16, L=4096, T=16, K=8, repeats=5) -> dict:
    """Three ways to compute every state h_t (the (b, n, d) x positions space), block by block, from the same
    position-major Δ, Δ·u and B: the implemented two-pass chunk scan, the within-chunk closed form
    h_t = E_t (h_0 + Σ_{s<=t} x_s / E_s) with E_t = exp(A·cumsum Δ), and the quadratic masked form
    h_t = Σ_{s<=t} exp(A (c_t - c_s)) x_s + E_t h_0. Times the state work only (no prologue, no y)."""
    g = torch.Generator().manual_seed(0)
    dtP = torch.nn.functional.softplus(torch.randn(L, b, d, generator=g) * 0.5 - 1.0)
    xP = dtP * torch.randn(L, b, d, generator=g)
    Bp = torch.randn(L, b, n, generator=g)
    A = -torch.exp(torch.randn(d, n, generator=g))
    A2 = A.t() * (1 / math.log(2.0))  # (n, d), log2 units
    B4 = Bp.permute(1, 2, 0)[:, None]  # (b, 1, n, L); C is unused here
    S = _Scan((b, d, L), torch.float32, "cpu", None, None, A, B4, B4, None, None, None, None, False, False,
              T, K)
    p, M, Lb = S.p, b * n * d, T * K
    w = _Work(p, torch.float32, "cpu", 2)

    def implemented():
        h, last = torch.zeros(M), None
        for i in p.spans(False):
            S0, E0 = p.span(i)
            S.chunk_decays(w, dtP[S0:E0])
            for j, s, _, k in p.blocks(i, False):
                o, kT = s - S0, k * T
                ptot = w.ptot_rows[o // T : o // T + k]
                _, last, h = S.states(w, dtP[s : s + kT], xP[s : s + kT], ptot, s, k, h, w.carry[j % 2],
                                      w.big[1])
        return last[-1].reshape(b, n, d).clone()

    E, x = torch.empty(Lb, b, n, d), torch.empty(Lb, b, n, d)

    def closed_form():
        h = torch.zeros(M)
        for s in range(0, L, Lb):
            c = dtP[s : s + Lb].view(K, T, b, d).cumsum(1).view(Lb, b, 1, d)  # cumulative Δ within the chunk
            torch.mul(c, A2, out=E).exp2_()                                      # E_t = exp(A c_t)
            torch.mul(xP[s : s + Lb, :, None], Bp[s : s + Lb, :, :, None], out=x).div_(E)
            xv, Ev = x.view(K, T, M), E.view(K, T, M)
            for t in range(1, T):
                xv[:, t].add_(xv[:, t - 1])                                      # Σ_{s<=t} x_s / E_s
            hs = [h]
            for k in range(K - 1):
                hs.append(Ev[k, T - 1] * (hs[-1] + xv[k, T - 1]))
            xv.add_(torch.stack(hs)[:, None]).mul_(Ev)
            h = xv[K - 1, T - 1].clone()
        return x[-1].clone()

    mask = torch.ones(T, T).tril_().view(1, T, T, 1, 1, 1)

    def quadratic():
        h = torch.zeros(M)
        for s in range(0, L, Lb):
            c = dtP[s : s + Lb].view(K, T, b, 1, d).cumsum(1)
            W = ((c[:, :, None] - c[:, None, :]) * A2).exp2_().mul_(mask)      # (K, T, T, b, n, d)
            torch.mul(xP[s : s + Lb, :, None], Bp[s : s + Lb, :, :, None], out=x)
            hl = (W * x.view(K, 1, T, b, n, d)).sum(2)
            E0 = (c * A2).exp2_()
            tot, hs = E0[:, -1].reshape(K, M), [h]
            for k in range(K - 1):
                hs.append(tot[k] * hs[-1] + hl[k, -1].reshape(M))
            hl += E0 * torch.stack(hs).view(K, 1, b, n, d)
            h = hl[K - 1, T - 1].reshape(M).clone()
        return hl[-1, -1].clone()

    ref = implemented()
    out = {"shape": [b, d, n, L], "chunk_size": T, "block_chunks": K}
    for name, fn in (("implemented_two_pass", implemented), ("closed_form_cumsum", closed_form),
                     ("quadratic_masked", quadratic)):
        last = fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        err = ((last - ref).abs().max() / ref.abs().max()).item()
        out[name] = {"min_ms": round(min(times) * 1e3, 1), "finite": bool(torch.isfinite(last).all()),
                     "max_rel_diff_last_state": float(f"{err:.2g}")}
        print(f"T={T} K={K} {name:22s} {out[name]}", file=sys.stderr, flush=True)
    return out


def _floor(b=2, d=256, n=16, L=4096, repeats=7) -> dict:
    """The unavoidable passes of any eager (op-by-op) chunked scan, each timed alone at the problem's full
    size in cache-sized pieces (1M state elements, 256K channel-major elements): what the forward would cost
    with no overhead, no carry and perfect fusion within each op."""
    big, small = 1 << 20, 1 << 18
    a, x, o = (torch.rand(big) for _ in range(3))
    e = -10 * torch.rand(big)  # exponents of typical decays (exp2 is not timed on inf or denormal results)
    d3, d3b = torch.rand(128, b, 1, d), torch.rand(128, b, n, 1)
    A2 = torch.rand(n, d)
    s1, s2 = torch.rand(small), torch.rand(small)
    nat, pm = torch.rand(b * d, small // (b * d)), torch.rand(small // (b * d), b * d)
    c5, h5, y5 = torch.rand(512, 1, n), torch.rand(512, n, d), torch.empty(512, 1, d)
    nbig, nsmall = b * d * n * L // big, b * d * L // small
    ops = {  # name: (op, how many times it runs per forward)
        "decay product Δ·A (write)": (lambda: torch.mul(d3, A2, out=o.view(128, b, n, d)), nbig),
        "exp2 of the decays": (lambda: torch.exp2(e, out=o), nbig),
        "input product Δu·B (write)": (lambda: torch.mul(d3, d3b, out=o.view(128, b, n, d)), nbig),
        "one recurrence pass (addcmul)": (lambda: torch.addcmul(x, a, o, out=o), nbig),
        "y = C·h (bmm over d_state)": (lambda: torch.bmm(c5, h5, out=y5), b * d * n * L // h5.numel()),
        "softplus (channel-major)": (lambda: torch.ops.aten.softplus.out(s1, 1.0, 20.0, out=s2), nsmall),
        "one layout change (2-D transpose copy)": (lambda: pm.copy_(nat.t()), nsmall),
        "silu (channel-major)": (lambda: torch.nn.functional.silu(s1), nsmall),
        "one elementwise mul (channel-major)": (lambda: torch.mul(s1, s2, out=s2), nsmall),
    }
    out = {}
    for name, (fn, count) in ops.items():
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(count):
                fn()
            times.append(time.perf_counter() - start)
        out[name] = round(min(times) * 1e3, 2)
        print(f"{name:40s} {out[name]:7.2f} ms per forward", file=sys.stderr, flush=True)
    return out


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


def _bench_case(case, modes, repeats, memory, ref_bwd_max_length) -> dict:
    b, d, n, L = case
    plan = _Plan(b, 1, d, n, L, None, None)
    res = {"batch": b, "dim": d, "d_state": n, "length": L,
           "chunked_plan": {"chunk_size": plan.T, "block_chunks": plan.K, "span_positions": plan.Ls},
           "loadavg_before": round(os.getloadavg()[0], 2)}
    with_ref_bwd = L <= ref_bwd_max_length
    for mode in modes:
        t, dy = _inputs(*case, requires_grad=mode != "fwd")
        backends = BACKENDS if mode == "fwd" or with_ref_bwd else {"chunked": selective_scan_chunked}
        for fn in backends.values():  # warm-up (allocator, thread pool, lazy initialisation)
            _time(fn, mode, t, dy)
        times = {name: [] for name in backends}
        for _ in range(repeats):
            for name, fn in backends.items():
                times[name].append(_time(fn, mode, t, dy))
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        r = res[mode] = {
            "repeats": repeats,
            "median_ms": {k: round(v * 1e3, 2) for k, v in med.items()},
            "min_ms": {k: round(v * 1e3, 2) for k, v in best.items()},
        }
        if "reference" in backends:
            r["speedup_median"] = round(med["reference"] / med["chunked"], 1)
            r["speedup_min"] = round(best["reference"] / best["chunked"], 1)
        if memory:
            r["peak_added_MiB"] = {k: _memory(k, mode, case)["added_MiB"] for k in backends}
        print(f"{b}x{d}x{n}x{L} {mode:7s} median ms {r['median_ms']}  min ms {r['min_ms']}  "
              f"speed-up x{r.get('speedup_median')} (median), x{r.get('speedup_min')} (min)"
              + (f"   peak +MiB {r['peak_added_MiB']}" if memory else ""), file=sys.stderr, flush=True)
    if with_ref_bwd:
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
    ap.add_argument("--ref-bwd-max-length", type=int, default=4096,
                    help="time the reference's forward+backward only up to this length: its autograd "
                         "backward is quadratic in length (each step's slice backward writes a full-length "
                         "gradient)")
    ap.add_argument("--variants", action="store_true",
                    help="instead: time three formulations of the state computation (see _variants)")
    ap.add_argument("--floor", action="store_true",
                    help="instead: time the unavoidable passes of an eager chunked scan one by one (_floor)")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--memory-child", nargs=3, metavar=("BACKEND", "MODE", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        backend, mode, case = args.memory_child
        _memory_child(backend, mode, tuple(int(x) for x in case.split(",")))
        return {}

    if args.floor:
        report = {"floor_ms": _floor()}
    elif args.variants:
        report = {"variants": [_variants(T=T, K=K) for T, K in ((16, 8), (8, 16), (4, 32))]}
    else:
        cases = [tuple(int(x) for x in c.split(",")) for c in args.case] if args.case else CASES
        report = {
            "problem": "gated scan (D, z, delta bias, softplus), fp32 inputs; batch x dim x d_state x length",
            "timing": "wall clock, one warm-up, backends interleaved; fwd under no_grad, fwd_bwd = forward + "
                      "autograd.grad of all inputs",
            "memory": "peak RSS (VmHWM, reset before the call) minus RSS before one call, in a fresh process "
                      "with the inputs already built",
            "cases": [_bench_case(c, args.modes.split(","), args.repeats, not args.no_memory,
                                  args.ref_bwd_max_length) for c in cases],
        }
    report["machine"] = {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                         "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                         "mkl": torch.backends.mkl.is_available(),
                         "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    report["commit"] = _commit()
    report["date"] = datetime.date.today().isoformat()
    text = json.dumps(report, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
