"""Sweep the Triton scan's tile choices (time-major inputs) and report time, registers, spills.

Used to pick plan_launch's defaults (GPU only); prints one line per configuration::

    python benchmarks/tune_scan.py --lengths 4096 1048576                  # forward tiles
    python benchmarks/tune_scan.py --backward --bwd-block-t 16 32 \\
        --bwd-block-d 32 64 --bwd-warps 1 2                              # forward + backward
    python benchmarks/tune_scan.py --stages 1 2 3                         # forward's load prefetch
    python benchmarks/tune_scan.py --passes --state-block-d 64 128        # each pass of a launch alone
    python benchmarks/tune_scan.py --passes --chain-stages 1 4            # the segment chain's prefetch

Backward mode times forward + backward (the backward cannot run alone: it needs the forward's
checkpoints, whose spacing is ``block_t``); subtract the forward's time from the first mode.
Passes mode times each launch of a segmented scan alone (forward: state-only pass, segment chain,
output pass; backward: adjoint-only pass, main pass), over forward tiles crossed with the
state-only pass's own tiles.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scan import bench, extra_memory_gib, leaves, make_inputs, time_major  # noqa: E402
from genomamba.kernels import selective_scan_triton as sst  # noqa: E402
from genomamba.kernels.scan_backward import _selective_scan_bwd_kernel  # noqa: E402
from genomamba.kernels.scan_forward import _selective_scan_fwd_kernel  # noqa: E402


def compiled_resources(kernel):
    """(registers, spills) of the most recently compiled variant of ``kernel``."""
    try:
        caches = kernel.device_caches.values()
        k = [k for cache in caches for k in cache[0].values()][-1]
        return getattr(k, "n_regs", None), getattr(k, "n_spills", None)
    except (AttributeError, IndexError, TypeError):  # Triton's cache layout differs between versions
        return None, None


def forward_configs(args):
    grid = itertools.product(args.block_t, args.block_d, args.warps, args.unroll, args.stages)
    for block_t, block_d, warps, unroll, stages in grid:
        yield dict(block_t=block_t, fwd_block_d=block_d, fwd_warps=warps, fwd_unroll=unroll,
                   fwd_stages=stages)


def backward_configs(args):
    grid = itertools.product(args.bwd_block_t, args.block_t, args.bwd_block_d, args.bwd_warps,
                             args.bwd_maxnreg)
    for tile_t, block_t, block_d, warps, maxnreg in grid:
        if block_t % tile_t == 0:
            config = dict(bwd_block_t=tile_t, block_t=block_t, bwd_block_d=block_d, bwd_warps=warps)
            yield config if maxnreg == 0 else {**config, "bwd_maxnreg": maxnreg}


def time_passes(t, label):
    """Print the milliseconds of each launch of one forward and one backward, timed alone."""
    x = sst._prepare(sst.ScanTensors(**t))
    batch, dim, length = x.u.shape
    d_state, device = x.A.shape[1], x.u.device
    fwd, bwd = sst._plans(x, None)
    y, _, ckpt = sst._forward(x, True, None, False, fwd, want_ckpt=True)
    h_out = sst._segment_states(batch, dim, fwd.segments, d_state, device)
    dtsum = torch.empty(batch, dim, fwd.segments, device=device)
    A_t = x.A.t().contiguous()
    times = {}
    if fwd.segments > 1:
        times["state"] = bench(lambda: sst._launch_forward(
            x, A_t, True, None, y, h_out, dtsum, ckpt, fwd, False, state_only=True, save_ckpt=False,
            add_to_y=False))
        times["chain"] = bench(lambda: sst._chain(h_out, dtsum, x.A, None, fwd, False))
    h_in = sst._chain(h_out, dtsum, x.A, None, fwd, False)[0] if fwd.segments > 1 else None
    times["output"] = bench(lambda: sst._launch_forward(
        x, A_t, True, h_in, y, h_out, dtsum, ckpt, fwd, False, state_only=False, save_ckpt=True,
        add_to_y=False))
    grads = sst._grad_buffers(x)
    d_out = sst._dense(torch.randn_like(x.u), read_only=True)
    carry = sst._segment_states(batch, dim, bwd.segments, d_state, device).zero_()
    bdt = torch.empty(batch, dim, bwd.segments, device=device)
    if bwd.segments > 1:
        times["adjoint"] = bench(lambda: sst._launch_backward(
            x, ckpt, A_t, True, d_out, None, carry, bdt, grads, bwd, False, adjoint_only=True,
            accumulate_dz=False, accumulate_du=False))
    times["bwd_main"] = bench(lambda: sst._launch_backward(
        x, ckpt, A_t, True, d_out, carry if bwd.segments > 1 else None, torch.empty_like(carry), bdt, grads,
        bwd, False, adjoint_only=False, accumulate_dz=False, accumulate_du=False))
    regs, spills = compiled_resources(_selective_scan_fwd_kernel)
    parts = " ".join(f"{k}={v:.3f}" for k, v in times.items())
    print(f"L={length} {label} fwd_segments={fwd.segments} bwd_segments={bwd.segments}: {parts} ms "
          f"(last fwd compile: regs={regs} spills={spills})", flush=True)


def sweep_passes(args):
    """time_passes over forward tiles x programs per SM x the state-only pass's own tiles x the
    segment chain's prefetch depth."""
    names = ("block_d", "unroll", "stages")
    state_grid = list(itertools.product(args.state_block_d, args.state_unroll, args.state_stages))
    for length in args.lengths:
        t = time_major(make_inputs(args.tokens // length, 512, length, 16, torch.bfloat16, seed=1))
        grid = itertools.product(list(forward_configs(args)), args.per_sm, state_grid, args.chain_stages)
        for config, per_sm, state, chain_stages in grid:
            state_config = {f"state_{k}": v for k, v in zip(names, state, strict=True) if v}
            if chain_stages:
                state_config["chain_stages"] = chain_stages
            sst.TUNING.clear()
            sst.TUNING.update(config, programs_per_sm=per_sm, **state_config)
            label = " ".join(f"{k}={v}" for k, v in {**config, "per_sm": per_sm, **state_config}.items())
            try:
                time_passes(t, label)
            except Exception as exc:  # a tile too large for registers or shared memory
                print(f"L={length} {label}: failed {exc!r:.120}", flush=True)
    sst.TUNING.clear()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[4096, 2**20])
    ap.add_argument("--tokens", type=int, default=2**20)
    ap.add_argument("--block-t", type=int, nargs="+", default=[64])
    ap.add_argument("--block-d", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--warps", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--unroll", type=int, nargs="+", default=[4])
    ap.add_argument("--per-sm", type=int, nargs="+", default=[8])
    ap.add_argument("--backward", action="store_true", help="time forward + backward over backward tiles")
    ap.add_argument("--bwd-block-t", type=int, nargs="+", default=[64])
    ap.add_argument("--bwd-block-d", type=int, nargs="+", default=[64])
    ap.add_argument("--bwd-warps", type=int, nargs="+", default=[1])
    ap.add_argument("--bwd-maxnreg", type=int, nargs="+", default=[0], help="register cap (0: none)")
    ap.add_argument("--stages", type=int, nargs="+", default=[0], help="forward prefetch stages (0: default)")
    ap.add_argument("--passes", action="store_true", help="time each launch of a scan alone")
    ap.add_argument("--state-block-d", type=int, nargs="+", default=[0], help="state pass tile (0: same)")
    ap.add_argument("--state-unroll", type=int, nargs="+", default=[0])
    ap.add_argument("--state-stages", type=int, nargs="+", default=[0])
    ap.add_argument("--chain-stages", type=int, nargs="+", default=[0], help="chain prefetch (0: default)")
    args = ap.parse_args()
    if args.passes:
        sweep_passes(args)
        return
    for length in args.lengths:
        t = time_major(make_inputs(args.tokens // length, 512, length, 16, torch.bfloat16, seed=1))
        g = leaves(t)
        d_out = time_major({"x": torch.randn_like(t["u"])})["x"]
        per_sm_choices = args.per_sm if length >= 2**17 else args.per_sm[:1]
        configs = backward_configs(args) if args.backward else forward_configs(args)
        for config, per_sm in itertools.product(list(configs), per_sm_choices):
            sst.TUNING.clear()
            per_sm_key = "bwd_programs_per_sm" if args.backward else "programs_per_sm"
            sst.TUNING.update(config, **{per_sm_key: per_sm})
            label = " ".join(f"{k}={v}" for k, v in {**config, "per_sm": per_sm}.items())
            try:
                if args.backward:
                    def step(g=g, d_out=d_out):
                        sst.selective_scan_triton(**g, delta_softplus=True).backward(d_out)

                    ms = bench(step, list(g.values()))
                    mem = extra_memory_gib(step)
                    regs, spills = compiled_resources(_selective_scan_bwd_kernel)
                    extra = f" extra_mem={mem:.2f}GiB"
                else:
                    with torch.no_grad():
                        ms = bench(lambda t=t: sst.selective_scan_triton(**t, delta_softplus=True))
                    regs, spills = compiled_resources(_selective_scan_fwd_kernel)
                    extra = ""
            except Exception as exc:  # a tile too large for registers or shared memory
                print(f"L={length} {label}: failed {exc!r:.120}", flush=True)
                continue
            print(f"L={length} {label}: {ms:.3f} ms regs={regs} spills={spills}{extra}", flush=True)
    sst.TUNING.clear()


if __name__ == "__main__":
    main()
