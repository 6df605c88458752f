"""Throughput of `genomamba score-variants` (SNVs per second) for a model preset and windows.

Input: the committed yeast chrI + chrII genome (data/demo/, copied to a temporary folder so that
its index is not written into the repository) and ``--snvs`` random SNVs on it (seeded; REF from
the genome). The model is the preset with its initial weights, saved as a model directory: the
time of a forward pass does not depend on what the weights learned. Each (window, batch size)
is timed once after a warm-up run (``--warmup`` SNVs, 64), end to end through
:func:`genomamba.infer.variants.score_variants` (VCF reading, genome fetches, forward passes,
writing the Parquet table)::

    python benchmarks/bench_variants.py --preset base-131k --windows 1024 16384 --batch-sizes 16 64
    python benchmarks/bench_variants.py --device cpu --preset tiny --snvs 200 --windows 1024

Prints one JSON line per measurement (and writes them all with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from genomamba.alphabet import decode  # noqa: E402
from genomamba.infer.variants import score_variants  # noqa: E402
from genomamba.io.fasta import read_fasta  # noqa: E402
from genomamba.model.config import preset  # noqa: E402
from genomamba.model.model import GenomambaModel  # noqa: E402
from genomamba.model_directory import save_pretrained  # noqa: E402


def random_snvs(fasta: Path, count: int, seed: int, out: Path) -> None:
    """A VCF of about ``count`` SNVs at random A/C/G/T positions of the FASTA's records (each
    record's share by its length), in order."""
    records = {r.name: decode(r.ids).decode("ascii") for r in read_fasta(fasta, softmask=False)}
    total = sum(len(seq) for seq in records.values())
    rng = np.random.default_rng(seed)
    rows = []
    for name, seq in records.items():
        codes = np.frombuffer(seq.encode(), np.uint8)
        bases = np.flatnonzero(np.isin(codes, np.frombuffer(b"ACGT", np.uint8)))
        for pos in np.sort(rng.choice(bases, count * len(seq) // total, replace=False)):
            ref = seq[pos]
            rows.append(f"{name}\t{pos + 1}\t.\t{ref}\t{'ACGT'[('ACGT'.index(ref) + 1) % 4]}")
    out.write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "\n".join(rows) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="base-131k")
    ap.add_argument("--snvs", type=int, default=4096)
    ap.add_argument("--windows", type=int, nargs="+", default=[1024, 16384])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--warmup", type=int, default=64, help="SNVs of the warm-up run")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        genome = tmp / "yeast.fa"
        shutil.copy(ROOT / "data/demo/yeast_chrI_chrII.fa", genome)
        model_dir = save_pretrained(GenomambaModel(preset(args.preset)), tmp / "model")
        warm, vcf = tmp / "warm.vcf", tmp / "snvs.vcf"
        random_snvs(genome, args.warmup, 1, warm)
        random_snvs(genome, args.snvs, 2, vcf)
        quiet = lambda message: None  # noqa: E731
        on_gpu = torch.cuda.is_available() and args.device != "cpu"
        device = torch.cuda.get_device_name() if on_gpu else "cpu"
        for window in args.windows:
            for batch_size in args.batch_sizes:
                kw = dict(window=window, batch_size=batch_size, device=args.device, log=quiet)
                score_variants(model_dir, warm, genome, tmp / "warm.parquet", **kw)
                if on_gpu:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                result = score_variants(model_dir, vcf, genome, tmp / "scores.parquet", **kw)
                seconds = time.perf_counter() - start
                row = {"preset": args.preset, "window": window, "batch_size": batch_size,
                       "snvs": result["rows"], "seconds": round(seconds, 3),
                       "snvs_per_s": round(result["rows"] / seconds, 1), "device": device,
                       "torch": torch.__version__}
                results.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
