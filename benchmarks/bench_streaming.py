"""GPU benchmark of whole-record streaming inference (genomamba.model.streaming): one exact pass over a
chromosome-sized record in bounded GPU memory.

For each preset (``--presets``; random weights: throughput and memory do not depend on them):

* ``stream``: the pooled (mean) embedding of one record of ``--length`` bases (random A/C/G/T, or the
  first record of ``--fasta``), streamed layer by layer in chunks planned for ``--max-gpu-memory``
  (bf16 autocast as ``genomamba embed``; PH models conjoined: the record and its reverse complement).
  Reported: seconds, bases/s, peak GPU memory (``torch.cuda.max_memory_allocated``), the plan's
  estimate, the residual stream's bytes and where it lived, the process's peak host memory (RSS).
* ``windowed``: the same bases cut into windows of the preset's ``max_length`` (``--window``) and run
  as ``genomamba embed --window`` runs them (genomamba.infer.runner.run_over_windows, batches of
  ``--batch-size``): bases/s, and ``stream_vs_windowed``, the streaming pass's share of it (the
  issue's criterion: at least 0.8).
* ``equality``: at each of ``--equality-lengths`` (capped at ``--length``), the streamed per-base
  embeddings, mean embedding and masked-LM logits against one pass of the whole record on the
  device (fp32, no autocast, no conjoining: what one pass of the longest record can hold), as
  ``max_abs`` and ``rel`` (max_abs / max |one pass|); ``oom`` when the one pass does not fit.

Prints one JSON document (also written to ``--json``). On the GPU machine::

    python3 -m pip install -q --no-deps --no-build-isolation -e .
    python3 benchmarks/bench_streaming.py --presets small-1k base-131k --length 70000000 \
        --max-gpu-memory 20G --json $OUT/streaming.json

CPU smoke test of the whole script::

    python3 benchmarks/bench_streaming.py --device cpu --length 20000 --chunk-size 4096
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_util import GIB, free_memory, is_oom, run_info, write_json  # noqa: E402

from genomamba.alphabet import A_ID  # noqa: E402
from genomamba.infer.memory_plan import parse_size, place_residual, plan_stream  # noqa: E402
from genomamba.model import GenomambaModel, preset  # noqa: E402
from genomamba.model.streaming import streamed_embedding, streamed_per_base  # noqa: E402
from genomamba.runtime.precision import autocast_for  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # ru_maxrss is KiB on Linux


def _peak_gpu_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    free_memory(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def record_ids(length: int, fasta: str | None, seed: int = 0) -> np.ndarray:
    """Token ids (uint8) of ``length`` bases: random A/C/G/T, or the first record of ``fasta``."""
    if fasta is None:
        return (np.random.default_rng(seed).integers(0, 4, length) + A_ID).astype(np.uint8)
    from genomamba.io.fasta import read_fasta

    record = next(iter(read_fasta(fasta, softmask=False)))
    return record.ids[:length]


def stream_pass(model, ids: np.ndarray, plan, device: torch.device, args) -> dict:
    nbytes = len(ids) * model.config.hidden_size * 4
    place = place_residual(nbytes, args.residual_store, args.work_dir, plan)
    _reset_peak(device)
    start = time.perf_counter()
    with autocast_for(device):
        vector = streamed_embedding(model, torch.from_numpy(ids)[None], chunk=place.chunk, device=device,
                                    residual=place.where, store_dir=args.work_dir)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"status": "ok", "seconds": seconds, "bases_per_s": len(ids) / seconds,
            "peak_gpu_gib": _peak_gpu_gib(device), "planned_gpu_gib": plan.device_bytes / GIB,
            "chunk": place.chunk, "residual_gib": nbytes / GIB, "residual_store": place.where,
            "peak_host_rss_gib": _peak_rss_gib(), "finite": bool(torch.isfinite(vector).all())}


def windowed_pass(model, ids: np.ndarray, window: int, batch_size: int, device: torch.device) -> dict:
    from genomamba.infer.model_inputs import SequenceWindow
    from genomamba.infer.runner import run_over_windows

    windows = (SequenceWindow("bench", "r", s, min(s + window, len(ids)), ids[s : s + window])
               for s in range(0, len(ids), window))
    _reset_peak(device)
    start = time.perf_counter()
    for _ in run_over_windows(windows, lambda i, m: model.embed(i, m, pooling="mean"),
                              batch_size=batch_size, device=device):
        pass
    _sync(device)
    seconds = time.perf_counter() - start
    return {"status": "ok", "seconds": seconds, "bases_per_s": len(ids) / seconds, "window": window,
            "batch_size": batch_size, "peak_gpu_gib": _peak_gpu_gib(device)}


def _errors(got: torch.Tensor, want: torch.Tensor) -> dict:
    diff = (got.double() - want.double()).abs().max().item()
    return {"max_abs": diff, "rel": diff / max(want.double().abs().max().item(), 1e-30)}


def equality(model, ids: np.ndarray, chunk: int, device: torch.device) -> dict:
    """Streamed vs one pass (fp32, no conjoining) of the whole record: per-base embeddings, mean
    embedding, masked-LM logits."""
    x = torch.from_numpy(ids.astype(np.int64))[None].to(device)
    _reset_peak(device)
    try:
        with torch.inference_mode():
            one = {"per_base": model.embed(x, conjoin=False).cpu()}
            one["mean"] = one["per_base"].double().mean(1)
            one["logits"] = model(x, conjoin=False).logits.float().cpu()
    except Exception as exc:  # the one pass is what runs out of memory at long lengths
        if not is_oom(exc):
            raise
        free_memory(device)
        return {"length": len(ids), "status": "oom", "one_pass_error": str(exc).split(".")[0]}
    one_pass_peak = _peak_gpu_gib(device)
    free_memory(device)
    out = {"length": len(ids), "status": "ok", "one_pass_peak_gpu_gib": one_pass_peak}
    per_base = np.zeros((1, len(ids), model.config.d_model), np.float32)
    streamed_per_base(model, x, per_base, chunk=chunk, device=device, conjoin=False)
    out["per_base_embedding"] = _errors(torch.from_numpy(per_base), one["per_base"])
    out["mean_embedding"] = _errors(torch.from_numpy(per_base).double().mean(1), one["mean"])
    del per_base
    logits = np.zeros((1, len(ids), model.config.vocab_size), np.float32)
    streamed_per_base(model, x, logits, chunk=chunk, device=device, what="logits", conjoin=False)
    out["logits"] = _errors(torch.from_numpy(logits), one["logits"])
    return out


def bench_preset(name: str, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = GenomambaModel(preset(name)).to(device).eval()
    plan = plan_stream(model, device, max_device_bytes=args.max_gpu_memory, chunk=args.chunk_size)
    ids = record_ids(args.length, args.fasta)
    result = {"preset": name, "parameters": model.num_parameters(), "rc_strategy": model.config.rc_strategy,
              "length": len(ids), "plan": plan.describe()}
    print(f"{name}: {plan.describe()}", file=sys.stderr)
    try:
        result["stream"] = stream_pass(model, ids, plan, device, args)
    except Exception as exc:
        if not is_oom(exc):
            raise
        free_memory(device)
        result["stream"] = {"status": "oom", "error": str(exc).split(".")[0]}
    window = args.window or model.config.max_length or 1024
    windowed_ids = ids[: args.windowed_bases] if args.windowed_bases else ids
    result["windowed"] = windowed_pass(model, windowed_ids, window, args.batch_size, device)
    if result["stream"]["status"] == "ok":
        result["stream_vs_windowed"] = result["stream"]["bases_per_s"] / result["windowed"]["bases_per_s"]
    lengths = sorted({min(n, len(ids)) for n in args.equality_lengths})
    result["equality"] = [equality(model, ids[:n], min(plan.chunk, n), device) for n in lengths]
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--presets", nargs="+", default=["small-1k", "base-131k"])
    parser.add_argument("--length", type=int, default=70_000_000, help="bases of the streamed record")
    parser.add_argument("--fasta", help="read the record from this FASTA (its first record), not random")
    parser.add_argument("--max-gpu-memory", type=parse_size, help="the plan's budget, e.g. 20G")
    parser.add_argument("--chunk-size", type=int, default=None, help="instead of the planned chunk")
    parser.add_argument("--window", type=int, default=None, help="windowed pass [default: preset max_length]")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per batch of the windowed pass")
    parser.add_argument("--windowed-bases", type=int, default=None,
                        help="time the windowed pass on the first N bases only [default: all]")
    parser.add_argument("--equality-lengths", type=int, nargs="+", default=[1_000_000, 8_000_000])
    parser.add_argument("--residual-store", default="auto", choices=["auto", "device", "memory", "disk"])
    parser.add_argument("--work-dir", default="/tmp", help="where a residual stream too big for memory goes")
    parser.add_argument("--json", help="also write the JSON here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    payload = {"info": run_info(device), "args": {k: v for k, v in vars(args).items() if k != "json"},
               "results": []}
    for name in args.presets:
        payload["results"].append(bench_preset(name, args, device))
        write_json(args.json, payload)  # every finished preset is on disk
    print(json.dumps(payload, indent=2, default=str))
    return payload


if __name__ == "__main__":
    main()
