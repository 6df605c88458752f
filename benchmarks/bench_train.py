"""GPU benchmark of the training issue: training tokens/s and peak memory, genomamba vs the Caduceus peer.

One training step = zero grads, masked-LM forward under bf16 autocast, backward, gradient clipping
to norm 1, AdamW step (fused where torch supports it; the same optimiser, groups and settings for
both models: weight decay 0.1 on matrices only, none on biases, norms, A_log, D, dt bias). Inputs
are random A/C/G/T crops masked BERT-style with genomamba.train.masking.bert_mask (15%; 80% [MASK],
10% random base, 10% unchanged); both models get the very same tensors. After ``--warmup`` steps,
``--steps`` steps are timed (``torch.cuda.synchronize`` around each):
tokens/s = batch x length x steps / (their total time); peak = ``torch.cuda.max_memory_allocated``
over the timed steps (weights, gradients, optimiser state and activations).

Rows (``--rows LENGTHxBATCH``): 131072x1, 131072x2, 1024x128, 1048576x1. Models (``--variants``,
bench_util.VARIANTS): ``ours`` = genomamba base-131k as the preset defines it (one strand,
rc_strategy "ph"; gradient checkpointing on), ``ours-nockpt`` (checkpointing off), ``ours-ps``
(rc_strategy "ps": two strands; checkpointing on), ``peer`` / ``peer-ckpt`` = the Caduceus-PS peer
(caduceus_peer.py: mamba_ssm 2.3.2.post1's Mamba, both strands) without / with per-block
checkpointing, ``peer-ph`` / ``peer-ph-ckpt`` = the same BiMamba on one strand, as Caduceus-Ph
trains. The peer takes mamba_ssm's fused path (mamba_inner_fn, how Caduceus trains) when
``--peer-conv-sdist`` gives causal-conv1d's sdist, its non-fused path otherwise; the JSON says
which. An out-of-memory step is reported as "OOM". Per row, each side's faster checkpointing
setting, compared like for like: one strand (ours / peer-ph) and two strands (ours-ps / peer).
The training issue's peer numbers (H100) are printed beside them: 7,729,408 parameters and
19.8 GB at 131,072 x 1 fit the one-strand peer on the fused path (measured: docs/benchmarks.md).

Usage on the GPU machine (after ``caduceus_peer.py`` has compiled the peer's scan into
/tmp/peer_build; an estimated 4-5 minutes for all rows, so the rows are split over two commands
for the 600 s limit -- ``--deadline-s`` skips what would start too late and every finished
measurement is already in the JSON)::

    python3 benchmarks/bench_train.py --peer-sdist .carry/mamba_ssm-2.3.2.post1.tar.gz \
        --peer-build-dir /tmp/peer_build --rows 131072x1 131072x2 1024x128 \
        --json $OUT/train_a.json
    python3 benchmarks/bench_train.py --peer-sdist .carry/mamba_ssm-2.3.2.post1.tar.gz \
        --peer-build-dir /tmp/peer_build --rows 1048576x1 --json $OUT/train_b.json

CPU smoke test (tiny preset, tiny rows, peer skipped)::

    python3 benchmarks/bench_train.py --device cpu --smoke
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
    make_adamw,
    mlm_batch,
    run_info,
    time_steps,
    write_json,
)

from genomamba.train.optimizer import param_groups  # noqa: E402

DEFAULT_ROWS = ["131072x1", "131072x2", "1024x128", "1048576x1"]
SMOKE = {"preset": "tiny", "rows": ["256x2", "32x16", "1024x1"], "warmup": 1, "steps": 2}
# The training issue's measurements of its mamba_ssm peer on an H100 (bf16 autocast, AdamW):
# (length, batch) -> (tokens/s, peak GB as quoted; None = not quoted)
ISSUE_PEER = {(131072, 1): (359e3, 19.8), (131072, 2): (434e3, 39.2), (1024, 128): (496e3, None),
              (1048576, 1): ("OOM", None)}


def parse_row(text: str) -> tuple[int, int]:
    try:
        length, batch = (int(part.replace("_", "").replace(",", "")) for part in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"rows are LENGTHxBATCH, e.g. 131072x1; got {text!r}") from exc
    if length < 1 or batch < 1:
        raise argparse.ArgumentTypeError(f"row {text!r}: length and batch must be positive")
    return length, batch


def make_train_step(name: str, length: int, batch: int, args, device, peer_lib, peer_norm):
    """Build one model, its optimiser and a batch; returns (meta, step), step() one training step."""
    model, loss_fn, meta = build_variant(name, args.preset, device, peer_lib, peer_norm,
                                         args.peer_tie_lm_head)
    optimizer, meta["optimizer"] = make_adamw(param_groups(model, 0.1), args.lr, device)
    inputs, labels = mlm_batch(batch, length, args.seed, device)
    amp = not args.no_autocast

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss = loss_fn(inputs, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return meta, step


def train_steps(name: str, length: int, batch: int, args, device, peer_lib, peer_norm) -> tuple[dict, dict]:
    """Build one model and its optimiser, time warm-up + timed steps; returns (meta, result)."""
    meta, step = make_train_step(name, length, batch, args, device, peer_lib, peer_norm)
    return meta, time_steps(step, args.warmup, args.steps, device)


def measure(name: str, length: int, batch: int, args, device, peer_lib, peer_norm) -> dict:
    """One (row, model) measurement; errors other than OOM are recorded, not raised."""
    record: dict = {"variant": name, "length": length, "batch": batch}
    try:
        meta, result = train_steps(name, length, batch, args, device, peer_lib, peer_norm)
        record.update(meta)
    except Exception as exc:  # noqa: BLE001 - one broken model must not end the run
        traceback.print_exc()
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    free_memory(device)  # the model, optimiser and batch died with train_steps' frame
    record.update(result)
    if result["status"] == "ok":
        record["tokens_per_s"] = batch * length * args.steps / result["total_s"]
    return record


def _best(records: list[dict], names: tuple[str, ...]) -> dict | None:
    ok = [r for r in records if r["variant"] in names and r["status"] == "ok"]
    return max(ok, key=lambda r: r["tokens_per_s"]) if ok else None


def summarise(records: list[dict], rows: list[tuple[int, int]]) -> list[dict]:
    """Per row: the best of each model over its checkpointing settings, and the like-for-like ratios."""
    out = []
    for length, batch in rows:
        here = [r for r in records if r["length"] == length and r["batch"] == batch]
        ours = _best(here, ("ours", "ours-nockpt"))
        ours_ps = _best(here, ("ours-ps", "ours-ps-nockpt"))
        row = {"length": length, "batch": batch}
        bests = {"ours": ours, "ours_ps": ours_ps}
        for key, names in (("peer_ph", ("peer-ph", "peer-ph-ckpt")), ("peer", ("peer", "peer-ckpt"))):
            bests[key] = _best(here, names)
            tried = [r for r in here if r["variant"] in names]
            row[f"{key}_status"] = "ok" if bests[key] else (
                "OOM" if tried and all(r["status"] == "oom" for r in tried) else "n/a")
        for key, rec in bests.items():
            row[f"{key}_tokens_per_s"] = rec and rec["tokens_per_s"]
            row[f"{key}_peak_gib"] = rec and rec["peak_gib"]
            row[f"{key}_variant"] = rec and rec["variant"]
        if ours and bests["peer_ph"]:
            row["ratio_ours_vs_peer_ph"] = ours["tokens_per_s"] / bests["peer_ph"]["tokens_per_s"]
        if ours_ps and bests["peer"]:
            row["ratio_ours_ps_vs_peer"] = ours_ps["tokens_per_s"] / bests["peer"]["tokens_per_s"]
        issue = ISSUE_PEER.get((length, batch))
        if issue:
            row["issue_peer_tokens_per_s"], row["issue_peer_peak_gb"] = issue
        out.append(row)
    return out


def print_tables(records: list[dict], summary: list[dict]) -> None:
    print("| length x batch | variant | model | checkpointing | tokens/s | s / step | peak GiB | status |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | --- |")
    for r in records:
        status = "OOM" if r["status"] == "oom" else r["status"]
        print(f"| {r['length']:,} x {r['batch']} | {r['variant']} | {r.get('model', '')} | "
              f"{r.get('gradient_checkpointing', '')} | {fmt(r.get('tokens_per_s'), ',.0f')} | "
              f"{fmt(r.get('median_s'))} | {fmt(r.get('peak_gib'))} | {status} |")
    print()
    # each cell: the faster of the model's two checkpointing settings, named
    print("| length x batch | ours tok/s (peak GiB) | peer-ph tok/s (peak GiB) | ours / peer-ph "
          "| ours-ps tok/s (peak GiB) | peer (PS) tok/s (peak GiB) | ours-ps / peer | issue's peer (H100) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    def cell(s, key):
        tps, peak, variant = s.get(f"{key}_tokens_per_s"), s.get(f"{key}_peak_gib"), s.get(f"{key}_variant")
        if tps is None:
            return ""
        return f"{tps:,.0f}" + ("" if peak is None else f" ({fmt(peak)})") + f" {variant}"

    for s in summary:
        peer = cell(s, "peer") or s["peer_status"]
        peer_ph = cell(s, "peer_ph") or s["peer_ph_status"]
        issue = s.get("issue_peer_tokens_per_s")
        issue_txt = "" if issue is None else (issue if isinstance(issue, str) else f"{issue:,.0f}")
        if s.get("issue_peer_peak_gb"):
            issue_txt += f" ({s['issue_peer_peak_gb']} GB)"
        print(f"| {s['length']:,} x {s['batch']} | {cell(s, 'ours')} | {peer_ph} | "
              f"{fmt(s.get('ratio_ours_vs_peer_ph'), '.2f')} | {cell(s, 'ours_ps')} | {peer} | "
              f"{fmt(s.get('ratio_ours_ps_vs_peer'), '.2f')} | {issue_txt} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="base-131k")
    ap.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, help="LENGTHxBATCH, e.g. 131072x1")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                    default=["ours", "ours-nockpt", "peer-ph", "peer-ph-ckpt", "ours-ps", "peer",
                             "peer-ckpt"])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lr", type=float, default=8e-3, help="AdamW learning rate (Caduceus' pretraining)")
    add_common_arguments(ap)
    args = ap.parse_args()
    apply_smoke(ap, args, SMOKE)
    rows = [parse_row(r) for r in args.rows]

    deadline = Deadline(args.deadline_s)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    peer_lib, peer_norm, peer_info = load_peer_lib(args, device)
    info = {**run_info(device, args.commit), **peer_info, "autocast": "bf16" if device.type == "cuda"
            and not args.no_autocast else "none (fp32)",
            "step": "zero_grad + forward + backward + clip_grad_norm(1.0) + AdamW step"}
    config = {k: v for k, v in vars(args).items() if k not in ("json",)}
    payload = {"benchmark": "bench_train", "info": info, "config": config, "results": [], "summary": []}
    print(json.dumps(info), flush=True)
    for length, batch in rows:
        for name in args.variants:
            if VARIANTS[name]["kind"] == "peer" and peer_lib is None:
                rec = {"variant": name, "length": length, "batch": batch, "status": "skipped",
                       "error": peer_info.get("peer_note")}
            elif deadline.passed():
                rec = {"variant": name, "length": length, "batch": batch, "status": "skipped",
                       "error": "time budget (--deadline-s)"}
            else:
                rec = measure(name, length, batch, args, device, peer_lib, peer_norm)
            print(json.dumps(rec), flush=True)
            payload["results"].append(rec)
            payload["summary"] = summarise(payload["results"], rows)
            write_json(args.json, payload)
    payload["elapsed_s"] = round(deadline.elapsed(), 1)
    write_json(args.json, payload)
    print_tables(payload["results"], payload["summary"])


if __name__ == "__main__":
    main()
