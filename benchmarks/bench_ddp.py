"""Data-parallel scaling of ``genomamba pretrain``: tokens/s on 1 GPU and on N GPUs (torchrun, DDP).

What it does, with no network access:

1. tokenizes the demo yeast genome (``data/demo/yeast_chrI_chrII.fa``) with ``genomamba tokenize
   --window L --stride L/2 --last-window shift``, so every window (and every crop) holds L real
   bases and tokens/s counts no padding;
2. for each GPU count (``--gpus 1 2``) runs ``torchrun --nproc-per-node N genomamba pretrain
   --preset base-131k --seq-len L --batch-size B --device cuda`` for ``--steps`` optimiser steps
   from the same seed (each run in its own RUN_DIR under ``--work``);
3. reads each run's ``metrics.jsonl`` and reports steady tokens/s = real tokens of the steps after
   ``--skip`` (Triton compilation and allocator warm-up happen in the first steps) divided by the
   wall time between them (``elapsed_s``; it includes everything a step does: data, masking,
   forward, backward, all-reduce, clipping, AdamW, metrics), then
   ``scaling_efficiency = tokens/s(N) / (N * tokens/s(1))``.

Scaling is *weak* by default: every GPU runs ``--micro-batches`` passes of B x L per step, so the
global batch grows with N (``--tokens-per-step`` = N x micro-batches x B x L), which is how
data-parallel training is used. ``--strong`` keeps the global batch of the largest N for every
run instead (one GPU then accumulates N passes per step).

A run that exceeds ``--run-timeout`` is stopped (SIGTERM to its process group, which makes it
checkpoint and exit) and its recorded steps are still used, so the whole script stays within about
``len(gpus) x run-timeout`` plus tokenization (seconds). Defaults: 200 steps of 131,072 x 1 per GPU;
choose ``--steps`` and ``--run-timeout`` from the step rates in docs/benchmarks.md ("Data-parallel
scaling"), plus start-up and compilation.

Usage on a 2-GPU machine (the JSON goes to stdout and to ``--json``)::

    python benchmarks/bench_ddp.py --gpus 1 2 --steps 200 --json $OUT/ddp.json

CPU smoke test (tiny preset, 2 gloo processes, a few steps)::

    python benchmarks/bench_ddp.py --smoke
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from torchrun_launch import LAUNCHER, run_stoppable, torchrun_command  # noqa: E402

GENOME = REPO / "data" / "demo" / "yeast_chrI_chrII.fa"


def steady_rate(records: list[dict], skip: int) -> dict:
    """Tokens/s over the steps after the first ``skip`` (from ``elapsed_s``), the median of the
    per-step ``tokens_per_s`` over the same steps, and the peak memory of the run."""
    if len(records) < skip + 2:
        return {"steps": len(records), "tokens_per_s": None, "median_step_tokens_per_s": None}
    timed = records[skip:]
    seconds = timed[-1]["elapsed_s"] - records[skip - 1]["elapsed_s"] if skip else timed[-1]["elapsed_s"]
    tokens = sum(r["tokens"] for r in timed)
    per_step = sorted(r["tokens_per_s"] for r in timed if r.get("tokens_per_s"))
    peak = max((r.get("peak_memory_bytes", 0) for r in records), default=0)
    return {
        "steps": len(records),
        "timed_steps": len(timed),
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
        "median_step_tokens_per_s": per_step[len(per_step) // 2] if per_step else None,
        "peak_memory_gb": round(peak / 2**30, 2) if peak else None,
        "final_loss": records[-1]["loss"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2], help="process counts to run (1 first)")
    ap.add_argument("--preset", default="base-131k")
    ap.add_argument("--seq-len", type=int, default=131_072)
    ap.add_argument("--batch-size", type=int, default=1, help="crops per forward pass")
    ap.add_argument("--micro-batches", type=int, default=1, help="forward passes per GPU per step")
    ap.add_argument("--strong", action="store_true", help="same global batch for every GPU count")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--skip", type=int, default=10, help="first steps left out of the rate")
    ap.add_argument("--run-timeout", type=float, default=200.0, help="seconds per run before stopping it")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--deterministic", action="store_true", help="pass --deterministic to every run")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    ap.add_argument("--smoke", action="store_true", help="CPU check: tiny preset, 256-base crops, 6 steps")
    args = ap.parse_args()
    if args.smoke:
        args.device, args.preset, args.seq_len, args.steps, args.skip = "cpu", "tiny", 256, 6, 2
        args.batch_size, args.run_timeout = 2, 120.0
    if sorted(args.gpus) != args.gpus or args.gpus[0] != 1:
        ap.error("--gpus must start with 1 and increase (the 1-GPU run is the reference)")

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_ddp."))
    work.mkdir(parents=True, exist_ok=True)
    launcher = work / "genomamba_cli.py"
    launcher.write_text(LAUNCHER)
    shards = work / f"shards-{args.seq_len}"
    tokenize = [sys.executable, str(launcher), "tokenize", str(GENOME), "-o", str(shards)]
    tokenize += [
        "--window",
        str(args.seq_len),
        "--stride",
        str(max(1, args.seq_len // 2)),
        "--last-window",
        "shift",
    ]
    code, seconds = run_stoppable(tokenize, 600, work / "tokenize.log")
    if code != 0:
        sys.exit(f"tokenize failed (exit {code}); see {work / 'tokenize.log'}")
    print(f"tokenized {GENOME.name} in {seconds:.1f} s -> {shards}", file=sys.stderr)

    per_pass = args.batch_size * args.seq_len
    result = {
        "preset": args.preset,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "micro_batches_per_gpu": args.micro_batches,
        "scaling": "strong" if args.strong else "weak",
        "steps": args.steps,
        "skip": args.skip,
        "device": args.device,
        "deterministic": args.deterministic,
        "runs": [],
    }
    try:
        import torch

        result["torch"] = torch.__version__
        if args.device == "cuda" and torch.cuda.is_available():
            result["gpu_name"] = torch.cuda.get_device_name(0)
            result["gpus_visible"] = torch.cuda.device_count()
    except ImportError:
        pass
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result["commit"] = commit.stdout.strip() or None

    for n in args.gpus:
        run_dir = work / f"run-{n}"
        if run_dir.exists():
            sys.exit(f"{run_dir} exists; use another --work")
        passes = (args.gpus[-1] if args.strong else n) * args.micro_batches
        command = torchrun_command(n, launcher)
        command += ["pretrain", "--data", str(shards), "--preset", args.preset, "--out", str(run_dir)]
        command += ["--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size)]
        command += ["--tokens-per-step", str(passes * per_pass), "--max-steps", str(args.steps)]
        command += ["--warmup-steps", "10", "--checkpoint-every", str(args.steps), "--device", args.device]
        command += ["--deterministic"] if args.deterministic else []
        print(f"{n} process(es): {' '.join(command[1:])}", file=sys.stderr)
        code, seconds = run_stoppable(command, args.run_timeout, work / f"run-{n}.log", processes=n)
        metrics = run_dir / "metrics.jsonl"
        records = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
        row = {
            "gpus": n,
            "exit_code": code,
            "wall_s": round(seconds, 1),
            "tokens_per_step": passes * per_pass,
        }
        row.update(steady_rate(records, args.skip))
        if code != 0:
            row["note"] = "stopped at --run-timeout" if code is None else f"failed; see {work}/run-{n}.log"
        result["runs"].append(row)
        print(json.dumps(row), file=sys.stderr)

    base = result["runs"][0]["tokens_per_s"]
    for row in result["runs"][1:]:
        rate = row["tokens_per_s"]
        row["scaling_efficiency"] = round(rate / (row["gpus"] * base), 4) if rate and base else None
    if len(result["runs"]) > 1:
        result["scaling_efficiency"] = result["runs"][-1]["scaling_efficiency"]
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
