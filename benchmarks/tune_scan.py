"""Sweep the Triton scan's forward tile choices (time-major inputs) and report time, registers, spills.

Used to pick plan_launch's defaults; prints one line per configuration (GPU only)::

    python benchmarks/tune_scan.py --lengths 4096 1048576
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scan import bench, make_inputs, time_major  # noqa: E402
from genomamba.kernels import selective_scan_triton as sst  # noqa: E402
from genomamba.kernels.scan_forward import _selective_scan_fwd_kernel  # noqa: E402


def compiled_resources():
    """(registers, spills) of the most recently compiled forward kernel variant."""
    try:
        caches = _selective_scan_fwd_kernel.device_caches.values()
        k = [k for cache in caches for k in cache[0].values()][-1]
        return getattr(k, "n_regs", None), getattr(k, "n_spills", None)
    except (AttributeError, IndexError, TypeError):  # Triton's cache layout differs between versions
        return None, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[4096, 2**20])
    ap.add_argument("--tokens", type=int, default=2**20)
    ap.add_argument("--block-t", type=int, nargs="+", default=[32])
    ap.add_argument("--block-d", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--warps", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--per-sm", type=int, nargs="+", default=[4, 8, 16])
    args = ap.parse_args()
    for length in args.lengths:
        t = time_major(make_inputs(args.tokens // length, 512, length, 16, torch.bfloat16, seed=1))
        per_sm_choices = args.per_sm if length >= 2**17 else args.per_sm[:1]
        for block_t, block_d, warps, per_sm in itertools.product(args.block_t, args.block_d, args.warps,
                                                                 per_sm_choices):
            sst.TUNING.clear()
            sst.TUNING.update(block_t=block_t, fwd_block_d=block_d, fwd_warps=warps, programs_per_sm=per_sm)
            _selective_scan_fwd_kernel.device_caches.clear()
            try:
                with torch.no_grad():
                    ms = bench(lambda t=t: sst.selective_scan_triton(**t, delta_softplus=True))
                regs, spills = compiled_resources()
            except Exception as exc:  # a tile too large for registers or shared memory
                print(f"L={length} T={block_t} BD={block_d} w={warps} per_sm={per_sm}: failed {exc!r:.80}")
                continue
            print(f"L={length} T={block_t} BD={block_d} w={warps} per_sm={per_sm}: {ms:.3f} ms "
                  f"regs={regs} spills={spills}", flush=True)
    sst.TUNING.clear()


if __name__ == "__main__":
    main()
