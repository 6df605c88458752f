"""Where one training step's GPU time goes: torch.profiler over bench_train's step, kernels ranked.

Builds one bench_train variant (default ``ours-nockpt``: genomamba base-131k, one strand, no
checkpointing), runs warm-up steps, then profiles ``--steps`` steps and prints the GPU kernels by
total time with their share of the profiled GPU time, plus the share of the scan's own kernels::

    python3 benchmarks/profile_train_step.py --row 131072x1 --json $OUT/profile.json

GPU only (the profile is of CUDA kernels); genomamba's variants only (``ours``, ``ours-nockpt``,
``ours-ps``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import make_train_step, parse_row  # noqa: E402
from bench_util import VARIANTS, run_info, write_json  # noqa: E402

SCAN_KERNELS = ("_selective_scan_fwd_kernel", "_selective_scan_bwd_kernel", "_chain_segments_kernel")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="base-131k")
    ap.add_argument("--row", default="131072x1", help="LENGTHxBATCH")
    ours = [v for v in VARIANTS if VARIANTS[v]["kind"] == "ours"]
    ap.add_argument("--variant", default="ours-nockpt", choices=ours)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--lr", type=float, default=8e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-autocast", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--commit", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    args.peer_tie_lm_head = False
    device = torch.device("cuda")
    length, batch = parse_row(args.row)
    _, step = make_train_step(args.variant, length, batch, args, device, None, "torch")
    for _ in range(max(args.warmup, 1)):
        step()
    torch.cuda.synchronize()
    activities = [torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    total_us = sum(e.self_device_time_total for e in events)
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    rows = [{"kernel": e.key[:120], "calls": e.count, "share": e.self_device_time_total / total_us,
             "ms_per_step": e.self_device_time_total / 1e3 / args.steps} for e in events]
    scan_share = sum(r["share"] for r in rows if r["kernel"].startswith(SCAN_KERNELS))
    print(f"{args.variant} at {length} x {batch}: {total_us / 1e3 / args.steps:.1f} ms of GPU kernels "
          f"per step, scan kernels {100 * scan_share:.1f}%")
    for r in rows[: args.top]:
        calls = r["calls"] // args.steps
        print(f"{r['ms_per_step']:9.2f} ms {100 * r['share']:5.1f}% {calls:5d}x  {r['kernel']}")
    write_json(args.json, {"benchmark": "profile_train_step", "info": run_info(device, args.commit),
                           "variant": args.variant, "row": args.row, "steps": args.steps,
                           "gpu_ms_per_step": total_us / 1e3 / args.steps, "scan_share": scan_share,
                           "kernels": rows})


if __name__ == "__main__":
    main()
