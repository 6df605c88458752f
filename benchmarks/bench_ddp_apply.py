"""Data-parallel scaling of ``genomamba finetune``, ``embed`` and ``predict`` (torchrun), with each
run's outputs checked against the 1-process run's.

What it does, with no network access:

1. builds its inputs from the committed demo data (``data/demo/``):

   * a labelled task (``task.csv``): ``--rows`` training windows of ``--row-len`` bases evenly
     spaced over the first 90% of yeast chrII, ``--rows / 8`` validation windows over its last 10%
     and ``--rows / 8`` test windows over chrI, each labelled ``coding`` when its centre base lies
     in a CDS of the GFF3, else ``other`` (neighbouring windows overlap when ``--rows`` asks for
     more than the chromosome holds: real sequences and labels at any size);
   * a FASTA to embed (``genome.fa``): chrI and chrII (their first ``--genome-bases`` bases when
     set), written ``--copies`` times under new record names, cut into ``--window`` windows;
   * a model directory (``model/``): a fresh ``--preset`` model (seed 0) written by
     ``save_pretrained``; random weights cost what trained ones do;

2. for each process count (``--gpus 1 2 4 8``, 1 first) runs, each in its own output:

   * ``torchrun --nproc-per-node N genomamba finetune --train task.csv --model model/`` for
     ``--epochs`` epochs, ``--dropout 0`` (the ranks' dropout masks could not match one process's),
     ``--patience 0``, ``--both-strands``; training rows/s = training rows of the epochs after
     the first / the ``elapsed_s`` between them (``metrics.jsonl``; an epoch's time includes its
     validation pass); ``--batch-size`` is the total, as with one GPU, so this is strong scaling;
   * ``torchrun ... genomamba embed model/ genome.fa --window W`` and ``torchrun ... genomamba
     predict finetune-1/model genome.fa --window W`` (the 1-process fine-tuned model for every N,
     so that the tables compare): bases/s = bases of the output's windows (one strand) / the wall
     time of the whole command. Start-up (imports, model load, kernel compilation) is included:
     ``embed`` and ``predict`` log nothing before their pass when stderr is not a terminal;

3. computes ``scaling_efficiency = rate(N) / (N * rate(1))`` and compares every output with the
   1-process run's: the embed and predict tables (same rows, same order, largest absolute
   difference of the values, mismatched ``predicted`` labels) and the fine-tuning run (the test
   metrics of ``metrics.json``, the train losses of ``metrics.jsonl`` and the exported weights,
   largest absolute differences); ``equal`` is true within ``--atol-infer`` / ``--atol-finetune``.
   On the CPU the tables are identical bit for bit and the weights within 5e-7 (the tests); the
   GPU defaults (1e-5 and 1e-3) are first guesses, not measured: read the differences themselves.

A run that exceeds ``--run-timeout`` is stopped (SIGTERM to its process group; SIGKILL 60 s later)
and reported as stopped, with no rate (a stopped run leaves no output). Process counts above the
GPUs visible are skipped and said so.

The defaults are sized for one 10-minute call on 8 GPUs: on one H100 the 1-process runs took
about 55 + 28 + 23 s (finetune, embed, predict) at half these sizes (``--rows 8192 --copies 12``),
start-up and Triton compilation included.

Usage on an 8-GPU machine, from the repository root (the JSON goes to stdout and to ``--json``;
``genomamba/kernels`` must reach the Triton kernels, as the device scripts arrange; the JSON's
``scan_backend`` says ``triton`` when it did)::

    PYTHONPATH=$PWD python benchmarks/bench_ddp_apply.py --gpus 1 2 4 8 --json $OUT/ddp_apply.json

CPU smoke test (tiny preset, 2 gloo processes, a few rows)::

    python benchmarks/bench_ddp_apply.py --smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from torchrun_launch import LAUNCHER, run_stoppable, torchrun_command  # noqa: E402

DEMO = REPO / "data" / "demo"
GENOME = DEMO / "yeast_chrI_chrII.fa"
GFF3 = DEMO / "yeast_chrI_chrII.gff3"
KEYS = ["file", "record", "start", "end", "n_bases"]  # a table row's identity, compared exactly


def build_task(path: Path, rows: int, row_len: int) -> dict:
    """Write the labelled windows (CSV: id, sequence, label, split) and return their counts."""
    from genomamba.alphabet import decode
    from genomamba.io.fasta import read_fasta
    from genomamba.tasks.coding import read_gff3_intervals

    records = {r.name: decode(r.ids, r.softmask).decode("ascii") for r in read_fasta(GENOME)}
    cds = read_gff3_intervals(GFF3)
    extra = max(1, rows // 8)
    chr2 = len(records["chrII"])
    plan = [
        ("train", "chrII", 0, int(chr2 * 0.9), rows),
        ("val", "chrII", int(chr2 * 0.9), chr2, extra),
        ("test", "chrI", 0, len(records["chrI"]), extra),
    ]
    lines, counts = ["id,sequence,label,split"], {}
    for split, chrom, begin, end, n in plan:
        coding = np.zeros(len(records[chrom]), bool)
        for start, stop in cds.get(chrom, {}).get("CDS", []):
            coding[start:stop] = True
        for start in np.linspace(begin, end - row_len, n).astype(int).tolist():
            label = "coding" if coding[start + row_len // 2] else "other"
            counts[f"{split}_{label}"] = counts.get(f"{split}_{label}", 0) + 1
            sequence = records[chrom][start : start + row_len]
            lines.append(f"{chrom}:{start + 1}-{start + row_len},{sequence},{label},{split}")
    path.write_text("\n".join(lines) + "\n")
    return {
        "path": str(path),
        "rows_per_split": {"train": rows, "val": extra, "test": extra},
        "row_len": row_len,
        "labels": counts,
    }


def build_genome(path: Path, copies: int, bases: int | None) -> dict:
    """Write chrI and chrII (their first ``bases`` bases when set) ``copies`` times as a FASTA."""
    from genomamba.alphabet import decode
    from genomamba.io.fasta import read_fasta

    records = [(r.name, decode(r.ids, r.softmask).decode("ascii")[:bases]) for r in read_fasta(GENOME)]
    with open(path, "w") as out:
        for copy in range(1, copies + 1):
            for name, sequence in records:
                out.write(f">{name}_copy{copy}\n")
                out.writelines(sequence[i : i + 80] + "\n" for i in range(0, len(sequence), 80))
    return {
        "path": str(path),
        "records": copies * len(records),
        "bases": copies * sum(len(s) for _, s in records),
    }


def build_model_dir(path: Path, preset: str) -> dict:
    import torch

    from genomamba.model import build_model
    from genomamba.model_directory import save_pretrained

    torch.manual_seed(0)
    model = build_model(preset)
    save_pretrained(model, path)
    return {"path": str(path), "preset": preset, "parameters": sum(p.numel() for p in model.parameters())}


def epoch_rate(out: Path) -> dict:
    """Training rows/s over the epochs after the first (``elapsed_s`` of metrics.jsonl)."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    n_train = json.loads((out / "metrics.json").read_text())["n"]["train"]
    epoch_s = np.diff([0.0] + [r["elapsed_s"] for r in records]).round(3).tolist()
    row = {"epochs": len(records), "train_rows": n_train, "epoch_s": epoch_s, "rows_per_s": None}
    if len(records) >= 2:
        seconds = records[-1]["elapsed_s"] - records[0]["elapsed_s"]
        row["rows_per_s"] = round(n_train * (len(records) - 1) / seconds, 2) if seconds > 0 else None
    return row


def _leaves(value, where: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for key in value for k, v in _leaves(value[key], f"{where}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{where}[{i}]").items()}
    return {where: value}


def compare_finetune(ref: Path, out: Path, atol: float) -> dict:
    """Test metrics, train losses and exported weights of ``out`` against ``ref``."""
    from genomamba.model_directory import from_pretrained

    a, b = (_leaves(json.loads((d / "metrics.json").read_text()).get("test")) for d in (ref, out))
    floats = [k for k in a if isinstance(a[k], float) and isinstance(b.get(k), float)]
    metric_diff = max(
        (abs(a[k] - b[k]) for k in floats if not (math.isnan(a[k]) and math.isnan(b[k]))), default=0.0
    )
    same_other = a.keys() == b.keys() and all(a[k] == b[k] for k in a if k not in floats)
    losses = [
        [json.loads(line)["train_loss"] for line in (d / "metrics.jsonl").read_text().splitlines()]
        for d in (ref, out)
    ]
    loss_diff = (
        max(np.abs(np.subtract(*losses)).tolist(), default=0.0) if len(losses[0]) == len(losses[1]) else None
    )
    wa, wb = (from_pretrained(d / "model").state_dict() for d in (ref, out))
    weight_diff = None
    if wa.keys() == wb.keys() and all(wa[k].shape == wb[k].shape for k in wa):
        weight_diff = max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa if wa[k].numel())
    row = {
        "test_metrics_max_abs_diff": metric_diff,
        "test_counts_equal": same_other,
        "train_loss_max_abs_diff": loss_diff,
        "weights_max_abs_diff": weight_diff,
    }
    row["equal"] = bool(
        same_other
        and metric_diff <= atol
        and loss_diff is not None
        and loss_diff <= atol
        and weight_diff is not None
        and weight_diff <= atol
    )
    return row


def compare_tables(ref: Path, out: Path, atol: float) -> dict:
    """Rows, order and values of a Parquet table against the 1-process one."""
    import pandas as pd

    a, b = pd.read_parquet(ref), pd.read_parquet(out)
    keys = [k for k in KEYS if k in a.columns]
    row = {
        "rows": len(b),
        "same_rows": len(a) == len(b) and list(a.columns) == list(b.columns),
        "same_order": None,
        "max_abs_diff": None,
        "mismatched": {},
    }
    if row["same_rows"]:
        row["same_order"] = bool(a[keys].reset_index(drop=True).equals(b[keys].reset_index(drop=True)))
        values = [c for c in a.columns if c not in keys and pd.api.types.is_float_dtype(a[c])]
        diff = np.abs(a[values].to_numpy(np.float64) - b[values].to_numpy(np.float64))
        row["max_abs_diff"] = float(np.nanmax(diff)) if diff.size else 0.0
        for column in (c for c in a.columns if c not in keys and c not in values):
            row["mismatched"][column] = int((a[column].to_numpy() != b[column].to_numpy()).sum())
    row["equal"] = bool(
        row["same_order"] and row["max_abs_diff"] <= atol and not any(row["mismatched"].values())
    )
    return row


def cli_args(name: str, n: int, args: argparse.Namespace, work: Path) -> list[str]:
    """The genomamba command line of job ``name`` with ``n`` processes; predict always uses the
    1-process fine-tuned model, so that its tables compare."""
    if name == "finetune":
        command = ["finetune", "--train", str(work / "task.csv"), "--model", str(work / "model")]
        command += ["--out", str(work / f"finetune-{n}"), "--epochs", str(args.epochs)]
        command += ["--batch-size", str(args.batch_size), "--lr", str(args.lr), "--dropout", "0"]
        return command + ["--patience", "0", "--seed", "0", "--both-strands", "--device", args.device]
    model = work / "model" if name == "embed" else work / "finetune-1" / "model"
    command = [name, str(model), str(work / "genome.fa"), "-o", str(work / f"{name}-{n}.parquet")]
    command += ["--window", str(args.window), "--batch-size", str(args.infer_batch_size)]
    return command + ["--device", args.device]


def summarise(result: dict, work: Path, args: argparse.Namespace) -> None:
    """Scaling efficiency and output comparison of every run against the 1-process run, in place."""
    for name, rows in result["runs"].items():
        base = rows[0]
        for row in rows:
            ok = row.get("status") == "ok" and base.get("status") == "ok"
            rate, ref = row.get("rate"), base.get("rate")
            row["scaling_efficiency"] = round(rate / (row["gpus"] * ref), 4) if ok and rate and ref else None
            if not ok or row is base:
                continue
            if name == "finetune":
                row["compare"] = compare_finetune(
                    work / "finetune-1", work / f"finetune-{row['gpus']}", args.atol_finetune
                )
            else:
                row["compare"] = compare_tables(
                    work / f"{name}-1.parquet", work / f"{name}-{row['gpus']}.parquet", args.atol_infer
                )
        compared = [r for r in rows[1:] if "compare" in r]
        result.setdefault("summary", {})[name] = {
            "scaling_efficiency": {str(r["gpus"]): r["scaling_efficiency"] for r in rows[1:]},
            "outputs_equal": all(r["compare"]["equal"] for r in compared) if compared else None,
            "all_ran": all(r.get("status") == "ok" for r in rows),
        }


def device_names(device: str) -> list[str]:
    if device == "cpu":
        return [f"cpu ({os.cpu_count()} cores)"]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
        if listing.returncode == 0 and listing.stdout.strip():
            return listing.stdout.strip().splitlines()
    except (OSError, subprocess.TimeoutExpired):
        pass
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--gpus", type=int, nargs="+", default=[1, 2, 4, 8], help="process counts to run (1 first)"
    )
    ap.add_argument("--preset", default="base-131k")
    ap.add_argument(
        "--rows", type=int, default=16384, help="training rows (validation and test: rows / 8 each)"
    )
    ap.add_argument("--row-len", type=int, default=500, help="bases per labelled row")
    ap.add_argument(
        "--epochs", type=int, default=3, help="fine-tuning epochs (the first is left out of the rate)"
    )
    ap.add_argument(
        "--batch-size", type=int, default=512, help="fine-tuning rows per step, all processes together"
    )
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--window", type=int, default=1024, help="embed/predict window")
    ap.add_argument("--infer-batch-size", type=int, default=64, help="embed/predict windows per forward pass")
    ap.add_argument(
        "--copies", type=int, default=24, help="times chrI + chrII are written into the FASTA to embed"
    )
    ap.add_argument(
        "--genome-bases", type=int, default=None, help="first bases of each record (default: all)"
    )
    ap.add_argument("--run-timeout", type=float, default=150.0, help="seconds per run before stopping it")
    ap.add_argument(
        "--atol-finetune", type=float, default=1e-3, help="fine-tuning outputs: equal within this"
    )
    ap.add_argument("--atol-infer", type=float, default=1e-5, help="embed/predict values: equal within this")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    ap.add_argument("--commit", default=None, help="commit to record (default: GENOMAMBA_COMMIT, else git)")
    ap.add_argument(
        "--smoke", action="store_true", help="CPU check: tiny preset, 2 gloo processes, a few rows"
    )
    args = ap.parse_args()
    if args.smoke:
        args.device, args.preset, args.gpus, args.rows, args.row_len = "cpu", "tiny", [1, 2], 24, 64
        args.epochs, args.batch_size, args.window, args.infer_batch_size = 3, 8, 128, 4
        args.copies, args.genome_bases, args.run_timeout, args.atol_finetune = 1, 1024, 120.0, 1e-5
    if sorted(set(args.gpus)) != args.gpus or args.gpus[0] != 1:
        ap.error("--gpus must start with 1 and increase (the 1-process run is the reference)")

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_ddp_apply."))
    if work.exists() and any(work.iterdir()):
        sys.exit(f"{work} is not empty; use another --work")
    work.mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(exist_ok=True)
    launcher = work / "genomamba_cli.py"
    launcher.write_text(LAUNCHER)
    tic = time.perf_counter()
    inputs = {
        "task": build_task(work / "task.csv", args.rows, args.row_len),
        "genome": build_genome(work / "genome.fa", args.copies, args.genome_bases),
        "model": build_model_dir(work / "model", args.preset),
    }
    print(f"inputs built in {time.perf_counter() - tic:.1f} s under {work}", file=sys.stderr)

    import torch
    from bench_util import run_info

    visible = torch.cuda.device_count() if args.device == "cuda" else math.inf
    result = {
        **run_info(torch.device(args.device), args.commit),
        "devices": device_names(args.device),
        "rates": {
            "finetune": "training rows/s over the epochs after the first (validation passes included)",
            "embed, predict": "bases of the windows (one strand) / wall time of the command, start-up "
            "included",
        },
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "json", "commit")},
        "inputs": inputs,
        "runs": {"finetune": [], "embed": [], "predict": []},
    }
    if args.device == "cuda" and result["scan_backend"] != "triton":
        print(
            f"warning: the scan runs on {result['scan_backend']}, not Triton (is genomamba/kernels there?): "
            "these are not the GPU rates",
            file=sys.stderr,
        )
    for n in args.gpus:
        for name in ("finetune", "embed", "predict"):
            row = {"gpus": n}
            result["runs"][name].append(row)
            if n > visible:
                row["status"] = f"skipped: {visible} GPU(s) visible"
                continue
            if name == "predict" and not (work / "finetune-1" / "model").is_dir():
                row["status"] = "skipped: the 1-process fine-tuning left no model"
                continue
            command = torchrun_command(n, launcher) + cli_args(name, n, args, work)
            row["command"] = shlex.join(["python", *command[1:]])
            print(f"{name}, {n} process(es): {row['command']}", file=sys.stderr)
            log = work / "logs" / f"{name}-{n}.log"
            code, seconds = run_stoppable(command, args.run_timeout, log, n, args.device)
            row.update(exit_code=code, wall_s=round(seconds, 2))
            if code != 0:
                row["status"] = "stopped at --run-timeout" if code is None else f"failed; see {log}"
                continue
            row["status"] = "ok"
            if name == "finetune":
                row.update(epoch_rate(work / f"finetune-{n}"))
                row["rate"] = row["rows_per_s"]
            else:
                import pandas as pd

                table = pd.read_parquet(work / f"{name}-{n}.parquet", columns=["start", "end"])
                row["windows"], row["bases"] = len(table), int((table["end"] - table["start"]).sum())
                row["rate"] = row["bases_per_s"] = round(row["bases"] / seconds, 1)
            print(json.dumps(row), file=sys.stderr)

    summarise(result, work, args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
