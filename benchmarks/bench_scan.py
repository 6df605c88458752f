"""GPU benchmark of the Triton selective scan against mamba_ssm's CUDA kernel, in one run.

Shapes follow the scan issue: batch x length = 2^20 tokens, dim 512, d_state 16, bf16 u/delta/z/B/C,
fp32 A/D/delta_bias, z gating, delta softplus. For each length it reports the median milliseconds
(triton.testing.do_bench) of forward and forward+backward, unidirectional and bidirectional, the
extra memory that forward+backward allocates beyond its inputs, and two floors. Our kernel is
timed on the same values stored channel-major ("cm", (batch, dim, length) contiguous, the peer's
only layout) and time-major ("tm", (batch, length, dim) storage, what the model's projections
produce); the peer always gets channel-major.

* HBM floor: bytes the forward must move (u, delta, z, B, C read once, y written once) over the
  bandwidth of a measured device-to-device copy;
* exp floor: batch x dim x length x d_state exponentials over the SFU rate (16 per SM per clock).

Usage (on the GPU machine)::

    python benchmarks/bench_scan.py --peer-sdist .carry/mamba_ssm-2.3.2.post1.tar.gz --json out.json

Without --peer-sdist (or if it fails to build) the peer columns are empty and the run says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parent))
from genomamba.kernels import selective_scan_triton as sst  # noqa: E402
from mamba_ssm_peer import load_peer, peer_backward, peer_forward  # noqa: E402


def make_inputs(batch, dim, length, d_state, dtype, seed):
    torch.manual_seed(seed)
    dev = "cuda"
    t = {
        "u": torch.randn(batch, dim, length, device=dev, dtype=dtype),
        "delta": (0.5 * torch.randn(batch, dim, length, device=dev) - 1.0).to(dtype),
        "A": -torch.arange(1, d_state + 1, device=dev, dtype=torch.float32).repeat(dim, 1)
        * torch.exp(0.1 * torch.randn(dim, d_state, device=dev)),
        "B": torch.randn(batch, d_state, length, device=dev, dtype=dtype),
        "C": torch.randn(batch, d_state, length, device=dev, dtype=dtype),
        "D": torch.randn(dim, device=dev),
        "z": torch.randn(batch, dim, length, device=dev, dtype=dtype),
        "delta_bias": torch.rand(dim, device=dev) - 4.0,
    }
    return t


def leaves(t):
    return {k: v.detach().clone().requires_grad_() for k, v in t.items()}


def bench(fn, grads=None):
    return triton.testing.do_bench(fn, warmup=25, rep=100, grad_to_none=grads, return_mode="median")


def extra_memory_gib(fn):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**30


def copy_bandwidth():
    x = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x))
    return 2 * x.numel() / (ms * 1e-3)


def sm_clock_hz():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, check=True).stdout
        return float(out.split()[0]) * 1e6
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return None


def rel_err(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def time_major(t):
    """The same logical (batch, dim, length) tensors stored (batch, length, dim): what a linear
    projection of (batch, length, d_model) activations produces, and the layout our kernel prefers."""
    return {k: v.transpose(1, 2).contiguous().transpose(1, 2) if v.dim() == 3 else v for k, v in t.items()}


def run_length(length, args, peer, bw, clock):
    batch = args.tokens // length
    dtype = getattr(torch, args.dtype)
    t_cm = make_inputs(batch, args.dim, length, args.d_state, dtype, seed=length)
    row = {"length": length, "batch": batch}
    dout = torch.randn_like(t_cm["u"])
    rev_inputs = make_inputs(batch, args.dim, length, args.d_state, dtype, length + 1)
    rev_cm = {k + "_rev": v for k, v in rev_inputs.items() if k != "z"}
    layouts = (("cm", t_cm, rev_cm), ("tm", time_major(t_cm), time_major(rev_cm)))
    for layout, t, rev in (x for x in layouts if x[0] in args.layouts):
        g = leaves(t)
        d_out = dout if layout == "cm" else time_major({"x": dout})["x"]

        def fwd(t=t):
            return sst.selective_scan_triton(**t, delta_softplus=True)

        def fwd_bwd(g=g, d_out=d_out):
            sst.selective_scan_triton(**g, delta_softplus=True).backward(d_out)

        def bi_shared(t=t):
            return sst.bidirectional_selective_scan_triton(**t, delta_softplus=True)

        def bi_separate(t=t, rev=rev):
            return sst.bidirectional_selective_scan_triton(**t, delta_softplus=True, **rev)

        def bi_fwd_bwd(g=g, d_out=d_out):
            sst.bidirectional_selective_scan_triton(**g, delta_softplus=True).backward(d_out)

        with torch.no_grad():
            row[f"{layout}_fwd_ms"] = bench(fwd)
            row[f"{layout}_bi_shared_fwd_ms"] = bench(bi_shared)
            row[f"{layout}_bi_separate_fwd_ms"] = bench(bi_separate)
        row[f"{layout}_fwd_bwd_ms"] = bench(fwd_bwd, list(g.values()))
        row[f"{layout}_bi_fwd_bwd_ms"] = bench(bi_fwd_bwd, list(g.values()))
        row[f"{layout}_extra_mem_gib"] = extra_memory_gib(fwd_bwd)
        for decay in args.decays:
            row.update(_structured_rows(layout, t, d_out, args.d_state, decay))
    if peer is not None:
        args_p = [t_cm[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
        row["peer_fwd_ms"] = bench(lambda: peer_forward(peer, *args_p))

        def peer_fwd_bwd():
            _, saved = peer_forward(peer, *args_p)
            peer_backward(peer, *args_p, dout, saved)

        row["peer_fwd_bwd_ms"] = bench(peer_fwd_bwd)
        row["peer_extra_mem_gib"] = extra_memory_gib(peer_fwd_bwd)
        with torch.no_grad():
            ours = sst.selective_scan_triton(**t_cm, delta_softplus=True)
            row["rel_err_vs_peer"] = rel_err(ours, peer_forward(peer, *args_p)[0])
    isz = t_cm["u"].element_size()
    n_bytes = 4 * batch * args.dim * length * isz + 2 * batch * args.d_state * length * isz
    row["hbm_floor_ms"] = n_bytes / bw * 1e3
    if clock:
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        row["exp_floor_ms"] = batch * args.dim * length * args.d_state / (16 * sms * clock) * 1e3
    return row


def _structured_rows(layout, t, d_out, d_state, decay):
    """The same calls with a structured A (``mixer.decay``: a ladder A[:, n] = A[:, 0] (n + 1), or a
    scalar A[:, n] = A[:, 0]), which the kernels run with one exponential per (position, channel):
    what the structure saves on this GPU, and how far its results lie from the full-A path's."""
    rate = t["A"][:, :1]
    steps = torch.arange(1, d_state + 1, device=rate.device, dtype=rate.dtype)
    t = {**t, "A": rate * steps if decay == "ladder" else rate.expand(-1, d_state).contiguous()}
    g = leaves(t)
    kw = {"delta_softplus": True, "decay": decay}
    row = {}
    with torch.no_grad():
        row[f"{layout}_{decay}_fwd_ms"] = bench(lambda: sst.selective_scan_triton(**t, **kw))
        full = sst.selective_scan_triton(**t, delta_softplus=True).float()
        row[f"{layout}_{decay}_rel_err_vs_full"] = rel_err(sst.selective_scan_triton(**t, **kw).float(), full)
    row[f"{layout}_{decay}_fwd_bwd_ms"] = bench(
        lambda: sst.selective_scan_triton(**g, **kw).backward(d_out), list(g.values()))
    row[f"{layout}_{decay}_bi_fwd_bwd_ms"] = bench(
        lambda: sst.bidirectional_selective_scan_triton(**g, **kw).backward(d_out), list(g.values()))
    return row


def _commit():
    """GENOMAMBA_COMMIT when set (a device copy of the tree may carry a stale .git), else git's HEAD."""
    if os.environ.get("GENOMAMBA_COMMIT"):
        return os.environ["GENOMAMBA_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[2**12, 2**15, 2**17, 2**20])
    ap.add_argument("--tokens", type=int, default=2**20, help="batch x length")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--peer-sdist", default=None)
    ap.add_argument("--peer-build-dir", default=".carry/peer_build")
    ap.add_argument("--json", default=None)
    ap.add_argument("--layouts", nargs="+", choices=["cm", "tm"], default=["cm", "tm"],
                    help="input storage: channel-major (batch, dim, length) and/or time-major")
    ap.add_argument("--decays", nargs="*", choices=["ladder", "scalar"], default=[],
                    help="also time these structured A (one exponential per position and channel)")
    ap.add_argument("--tuning", type=json.loads, default={},
                    help="JSON overrides of plan_launch's choices (kernels' TUNING), e.g. from tune_scan.py")
    args = ap.parse_args()
    sst.TUNING.update(args.tuning)

    peer = load_peer(args.peer_sdist, args.peer_build_dir)
    bw = copy_bandwidth()
    clock = sm_clock_hz()
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
            "copy_bandwidth_TBps": bw / 1e12, "sm_clock_max_MHz": clock and clock / 1e6,
            "peer": peer is not None, "tuning": dict(sst.TUNING), "commit": _commit()}
    print(json.dumps(info), flush=True)
    rows = []
    for length in args.lengths:
        row = run_length(length, args, peer, bw, clock)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    cols = ["length", "batch", "peer_fwd_ms", "cm_fwd_ms", "tm_fwd_ms", "peer_fwd_bwd_ms", "cm_fwd_bwd_ms",
            "tm_fwd_bwd_ms", "tm_bi_shared_fwd_ms", "tm_bi_separate_fwd_ms", "tm_bi_fwd_bwd_ms",
            "peer_extra_mem_gib", "cm_extra_mem_gib", "tm_extra_mem_gib", "hbm_floor_ms", "exp_floor_ms",
            "rel_err_vs_peer"]
    cols += [f"{layout}_{decay}_{what}" for layout in args.layouts for decay in args.decays
             for what in ("fwd_ms", "fwd_bwd_ms", "bi_fwd_bwd_ms", "rel_err_vs_full")]
    print("| " + " | ".join(cols) + " |")
    for r in rows:
        cells = (f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols)
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
