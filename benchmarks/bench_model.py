"""GPU benchmark of the model issue: forward+backward of ``base-131k`` at batch 1 on a 2^20-base window.

For each compared model (``--variants``): a masked-LM forward (bf16 autocast, MLM head, BERT-style
15% masking of random A/C/G/T) and backward, no optimiser step. Reported per model: median
seconds per step over ``--steps`` timed steps after ``--warmup`` (``torch.cuda.synchronize``
around each), peak memory (``torch.cuda.max_memory_allocated`` over the timed steps, reset after
warm-up; it includes weights and gradients), and -- when the first length runs out of memory --
"oom" plus the largest of ``--lengths`` that fits (tried in the order given).

Models (see bench_util.VARIANTS): ``ours`` = genomamba base-131k as the preset defines it
(rc_strategy "ph": one strand; gradient checkpointing on); ``ours-ps`` = the same with
rc_strategy "ps" (two strands: the same work as the peer); ``peer`` / ``peer-ckpt`` = the
Caduceus-PS peer of caduceus_peer.py (mamba_ssm 2.3.2.post1's Mamba, non-fused path because
causal_conv1d is missing) without and with per-block gradient checkpointing (Caduceus has none).

Usage on the GPU machine (H100; run caduceus_peer.py first, so the peer's CUDA scan is already
compiled in the build directory; about 3-4 minutes; ``--deadline-s`` skips what would start too
late for a 600 s limit)::

    python3 -m pip install -q --no-deps --no-build-isolation -e .
    python3 benchmarks/caduceus_peer.py --peer-sdist .carry/mamba_ssm-2.3.2.post1.tar.gz \
        --peer-build-dir /tmp/peer_build --json $OUT/peer.json
    python3 benchmarks/bench_model.py --peer-sdist .carry/mamba_ssm-2.3.2.post1.tar.gz \
        --peer-build-dir /tmp/peer_build --json $OUT/model.json

(the ``run`` tool must carry ``.carry`` and ``.whl``: the sdist and the einops/packaging wheels;
add ``--commit SHA`` where the device's copy of the tree has no ``.git``).
CPU smoke test of the whole script (tiny preset, tiny lengths, peer skipped)::

    python3 benchmarks/bench_model.py --device cpu --smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_util import (  # noqa: E402
    VARIANTS,
    Deadline,
    add_common_arguments,
    apply_smoke,
    autocast,
    build_variant,
    fmt,
    free_memory,
    load_peer_lib,
    mlm_batch,
    run_info,
    time_steps,
    write_json,
)

SMOKE = {"preset": "tiny", "lengths": [512, 256, 128], "warmup": 1, "steps": 2}


def fwd_bwd_at(model, loss_fn, length: int, args, device) -> dict:
    """Time forward+backward at one length (see bench_util.time_steps for the result)."""
    inputs, labels = mlm_batch(args.batch, length, args.seed, device)
    amp = not args.no_autocast

    def step():
        model.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss = loss_fn(inputs, labels)
        loss.backward()

    return time_steps(step, args.warmup, args.steps, device)


def measure_variant(name: str, args, device, peer_lib, peer_norm, deadline: Deadline) -> dict:
    """Build one model and time it at the first length of ``args.lengths`` that fits."""
    record: dict = {"variant": name, "batch": args.batch, "target_length": args.lengths[0], "attempts": []}
    try:
        model, loss_fn, meta = build_variant(name, args.preset, device, peer_lib, peer_norm,
                                         args.peer_tie_lm_head)
    except Exception as exc:  # noqa: BLE001 - one broken model must not end the run
        traceback.print_exc()
        record.update(status="error", error=f"{type(exc).__name__}: {exc}")
        return record
    record.update(meta)

    for length in args.lengths:
        if deadline.passed():
            record["attempts"].append({"length": length, "status": "skipped", "error": "time budget"})
            break
        try:
            result = fwd_bwd_at(model, loss_fn, length, args, device)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        model.zero_grad(set_to_none=True)
        free_memory(device)
        result["length"] = length
        print(json.dumps({"variant": name, **result}), flush=True)
        record["attempts"].append(result)
        if result["status"] != "oom":
            break
    del model, loss_fn
    free_memory(device)

    first = record["attempts"][0] if record["attempts"] else {"status": "skipped"}
    record["status"] = first["status"]
    fits = [a for a in record["attempts"] if a["status"] == "ok"]
    record["largest_fitting_length"] = fits[0]["length"] if fits else None
    if first["status"] == "ok":
        record.update(s_per_step=first["median_s"], peak_gib=first["peak_gib"])
    return record


def print_table(records: list[dict]) -> None:
    cols = ["variant", "model", "rc", "checkpointing", "params", "target length", "status", "s / step",
            "peak GiB", "largest length that fits (s / step, peak GiB there)"]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for r in records:
        fits = [a for a in r.get("attempts", []) if a["status"] == "ok"]
        where = ""
        if fits:
            a = fits[0]
            peak = "" if a["peak_gib"] is None else f", {fmt(a['peak_gib'])} GiB"
            where = f"{a['length']:,} ({fmt(a['median_s'])} s{peak})"
        cells = [r["variant"], r.get("model", ""), r.get("rc_strategy", ""),
                 r.get("gradient_checkpointing", ""),
                 f"{r['parameters']:,}" if "parameters" in r else "", f"{r['target_length']:,}",
                 r["status"].upper() if r["status"] == "oom" else r["status"],
                 fmt(r.get("s_per_step")), fmt(r.get("peak_gib")), where]
        print("| " + " | ".join(str(c) for c in cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="base-131k")
    ap.add_argument("--lengths", type=int, nargs="+", default=[2**20, 2**19, 2**18, 2**17],
                    help="first = the measured window; the rest are tried, in order, after an OOM")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                    default=["ours", "ours-ps", "peer", "peer-ckpt"])
    add_common_arguments(ap)
    args = ap.parse_args()
    apply_smoke(ap, args, SMOKE)

    deadline = Deadline(args.deadline_s)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    peer_lib, peer_norm, peer_info = load_peer_lib(args, device)
    info = {**run_info(device, args.commit), **peer_info, "autocast": "bf16" if device.type == "cuda"
            and not args.no_autocast else "none (fp32)", "step": "forward + backward (no optimiser)"}
    config = {k: v for k, v in vars(args).items() if k not in ("json",)}
    payload = {"benchmark": "bench_model", "info": info, "config": config, "results": []}
    print(json.dumps(info), flush=True)
    for name in args.variants:
        if VARIANTS[name]["kind"] == "peer" and peer_lib is None:
            payload["results"].append({"variant": name, "status": "skipped", "target_length": args.lengths[0],
                                       "error": peer_info.get("peer_note")})
            continue
        payload["results"].append(measure_variant(name, args, device, peer_lib, peer_norm, deadline))
        write_json(args.json, payload)
    payload["elapsed_s"] = round(deadline.elapsed(), 1)
    write_json(args.json, payload)
    print_table(payload["results"])


if __name__ == "__main__":
    main()
