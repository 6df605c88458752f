"""GPU benchmark of the fused conv + SiLU (kernels/conv_silu.py): forward and backward, per plan.

A base-131k mixer's stream: x = the first 512 of in_proj's 1,024 output columns (time-major,
row stride 1,024), bf16, K = 4, bias, no mask; milliseconds are triton.testing.do_bench medians.
``backward`` is both backward kernels (g with the dw/dbias sums, then dx) from a fixed du. The
backward's first pass is timed for every ``GRAD_PLAN`` given (defer_sums, num_warps)::

    python3 benchmarks/bench_conv.py --rows 131072x1 1048576x1 --plans 0,4 1,4 1,8 --json $OUT/conv.json

Bytes each pass must move (x, du read, g written, then g read and dx written) over the measured
device-to-device copy bandwidth give the memory floor printed beside each time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import triton.testing

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_util import run_info, write_json  # noqa: E402
from genomamba.kernels import conv_silu  # noqa: E402


def copy_bandwidth(n_bytes: int = 1 << 30) -> float:
    """Bytes per second of a device-to-device copy of ``n_bytes`` (read + write counted)."""
    a = torch.empty(n_bytes // 2, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    ms = triton.testing.do_bench(lambda: b.copy_(a))
    return 2 * a.numel() * a.element_size() / (ms * 1e-3)


def time_row(length: int, batch: int, channels: int, plans: list[str], bandwidth: float) -> list[dict]:
    """Forward and backward milliseconds at one row, both conv directions, every backward plan."""
    device = torch.device("cuda")
    wide = torch.randn(batch, length, 2 * channels, device=device, dtype=torch.bfloat16)
    x = wide[..., :channels].detach().requires_grad_()
    weight = (0.5 * torch.randn(channels, 1, 4, device=device)).requires_grad_()
    bias = (0.1 * torch.randn(channels, device=device)).requires_grad_()
    du = torch.randn(batch, length, channels, device=device, dtype=torch.bfloat16)
    elem = x.element_size() * batch * length * channels
    records = []
    for anti_causal in (False, True):
        def forward(anti_causal=anti_causal):
            return conv_silu.conv_silu_triton(x, weight, bias, anti_causal)

        with torch.no_grad():
            fwd = triton.testing.do_bench(forward)
        for plan in plans:
            defer, warps = (int(v) for v in plan.split(","))
            conv_silu.GRAD_PLAN.update(defer_sums=bool(defer), num_warps=warps)
            u = forward()
            bwd = triton.testing.do_bench(lambda u=u: torch.autograd.grad(u, (x, weight, bias), du,
                                                                          retain_graph=True))
            records.append({
                "length": length, "batch": batch, "channels": channels, "anti_causal": anti_causal,
                "defer_sums": bool(defer), "grad_num_warps": warps, "forward_ms": round(fwd, 4),
                "backward_ms": round(bwd, 4), "forward_floor_ms": round(2 * elem / bandwidth * 1e3, 4),
                "backward_floor_ms": round(5 * elem / bandwidth * 1e3, 4),
            })
            print(records[-1], flush=True)
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=["131072x1", "1048576x1"], help="LENGTHxBATCH")
    ap.add_argument("--channels", type=int, default=512)
    ap.add_argument("--plans", nargs="+", default=["0,4", "1,4", "1,8"], help="defer_sums,num_warps")
    ap.add_argument("--commit", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    bandwidth = copy_bandwidth()
    payload = {"benchmark": "bench_conv", "info": run_info(torch.device("cuda"), args.commit),
               "copy_bandwidth_gb_s": round(bandwidth / 1e9, 1), "results": []}
    default_plan = dict(conv_silu.GRAD_PLAN)
    for row in args.rows:
        length, batch = (int(v) for v in row.split("x"))
        payload["results"] += time_row(length, batch, args.channels, args.plans, bandwidth)
        conv_silu.GRAD_PLAN.update(default_plan)
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
