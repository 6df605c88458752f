"""Zero-shot sanity check of a masked-LM on real biology: codon positions and synonymous changes.

Every SNV of every annotated coding base of a genome (GFF3 ``CDS`` lines, both strands, multi-exon
CDS joined by parent with their phases: benchmarks/codon_snvs.py) is written as a VCF with its codon
position and effect class, scored by ``genomamba score-variants``' own code
(:func:`genomamba.infer.variants.score_variants`: llr = log P(alt) - log P(ref) at the masked base),
and the scores are joined back. Third codon positions are mostly synonymous (the genetic code's
redundancy sits there), so a model that has learned coding sequence should care less about them:
|llr| smaller at position 3 than at positions 1 and 2, and smaller for synonymous than for
non-synonymous changes (issue 18). The report gives, per codon position and per effect class: count,
mean, median and 10/25/75/90% quantiles of |llr|, and the mean llr; and four one-sided Mann-Whitney U
tests on |llr| (scipy, normal approximation with tie correction): position 3 < position 1, 3 < 2,
synonymous < non-synonymous (every other class), and synonymous < non-synonymous at position 3 alone
(the genetic code rather than the position), each with its effect size (rank-biserial r = 1 - 2U /
(n_a n_b): P(|llr_a| < |llr_b|) - P(>), 0 for no effect, 1 when every a is smaller). The three SNVs of
a base share its context, so the p-values treat dependent values as independent (too small); read
the effect sizes.

The same is run for a control: a freshly initialised model of the same architecture (seeded). A
model that knows nothing has no codon effect, except what base composition alone gives (third
positions of yeast genes are AT-rich); the effect is learned where the model shows it and the
control does not, or much less.

Bases coding in two CDS (overlapping genes; looked for among all CDS, also those --max-cds leaves
out) have no one codon position or effect: they are left out, neither scored nor counted, and the
report says how many SNVs that was.
The genome is read through a symbolic link in a temporary folder, so its index is written there,
not beside the input (the repository's data/demo stays clean)::

    python benchmarks/zero_shot_codons.py MODEL data/demo/yeast_chrI_chrII.fa \\
        data/demo/yeast_chrI_chrII.gff3 --device cuda --window 1024 --json zero_shot.json
    python benchmarks/zero_shot_codons.py MODEL GENOME.fa GENES.gff3 --device cpu --max-cds 5 \\
        --sample 200 --window 128      # a CPU smoke run: 5 genes, 200 coding bases (600 SNVs)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import codon_snvs  # noqa: E402

from genomamba.errors import GenomambaError, InputDataError  # noqa: E402
from genomamba.io.atomic import replacing  # noqa: E402
from genomamba.io.fasta import read_fasta  # noqa: E402
from genomamba.io.regions import parse_region  # noqa: E402

QUANTILES = (0.10, 0.25, 0.75, 0.90)
#: (name, group a, group b): each asks whether |llr| is smaller in a than in b.
COMPARISONS = (
    ("position_3_vs_1", "codon position 3", "codon position 1"),
    ("position_3_vs_2", "codon position 3", "codon position 2"),
    ("synonymous_vs_non_synonymous", "synonymous", "non-synonymous"),
    ("synonymous_vs_non_synonymous_at_position_3", "synonymous at position 3",
     "non-synonymous at position 3"),
)


def in_regions(transcripts: list, regions: list[str], lengths: dict[str, int]) -> list:
    """The transcripts whose whole span lies inside one of ``regions`` (all of them without any).

    Raises:
        InputDataError: a region on a record the FASTA does not have.
    """
    if not regions:
        return list(transcripts)
    spans = []
    for text in regions:
        chrom, start, end = parse_region(text)
        if chrom not in lengths:
            raise InputDataError(f"--region {text}: the FASTA has no record {chrom!r} "
                                 f"(it has {', '.join(lengths)})")
        spans.append((chrom, start or 0, lengths[chrom] if end is None else end))
    return [t for t in transcripts
            if any(t.chrom == c and s <= t.span[0] and t.span[1] <= e for c, s, e in spans)]


def coding_snvs(genome: Path, gff3: Path, *, regions: list[str], max_cds: int | None, sample: int | None,
                seed: int) -> tuple[pd.DataFrame, dict, dict[str, int]]:
    """(the SNVs to score, with ``overlap``; what was counted on the way; the records' lengths)."""
    records = {r.name: r.ids for r in read_fasta(genome, softmask=False)}
    lengths = {name: int(ids.size) for name, ids in records.items()}
    transcripts = codon_snvs.read_cds(gff3)
    chosen = in_regions(transcripts, regions, lengths)
    usable, skipped = codon_snvs.coding_sequences(chosen, records)
    rng = np.random.default_rng(seed)
    used = usable
    if max_cds is not None and len(usable) > max_cds:  # a seeded choice, not the first genes
        used = [usable[i] for i in np.sort(rng.choice(len(usable), max_cds, replace=False))]
    # overlaps are looked for among every usable CDS, not only those chosen by --max-cds
    table = codon_snvs.mark_overlaps(codon_snvs.snv_table(used), codon_snvs.shared_bases(usable))
    enumerated, overlapping = len(table), int(table["overlap"].sum())
    sites = table.loc[~table["overlap"], ["chrom", "pos"]].drop_duplicates()
    if sample is not None and len(sites) > sample:
        sites = sites.iloc[np.sort(rng.choice(len(sites), sample, replace=False))]
    scored = table.merge(sites, on=["chrom", "pos"])  # sampled sites, overlaps dropped
    if scored.empty:
        raise InputDataError(f"{gff3}: no coding SNV to score (transcripts in the regions: {len(chosen)}, "
                             f"left out: {dict(skipped) or 'none'})")
    counts = {"cds_in_gff3": len(transcripts), "cds_in_regions": len(chosen),
              "cds_skipped": {reason: int(skipped[reason]) for reason in codon_snvs.SKIPS},
              "cds_usable": len(usable), "cds_used": len(used),
              "snvs_enumerated": enumerated, "snvs_in_overlapping_cds_left_out": overlapping,
              "snvs_scored": len(scored)}
    return scored, counts, lengths


def control_model(model: str, directory: Path, seed: int) -> Path:
    """A freshly initialised model (seeded) of ``model``'s architecture, saved in ``directory``."""
    import torch

    from genomamba.model.config import ModelConfig
    from genomamba.model.model import GenomambaModel
    from genomamba.model_directory import read_config, save_pretrained

    torch.manual_seed(seed)
    fresh = GenomambaModel(ModelConfig.from_dict(read_config(model)["architecture"]))
    note = f"untrained control of {model}, seed {seed}"
    return save_pretrained(fresh, directory, provenance={"note": note})


def score(model, vcf: Path, genome: Path, out: Path, args) -> tuple[pd.DataFrame, float]:
    """(chrom, pos, alt, llr of every SNV of ``vcf``; seconds), through score-variants' own code."""
    from genomamba.infer.variants import score_variants

    start = time.perf_counter()
    score_variants(model, vcf, genome, out, window=args.window, batch_size=args.batch_size,
                   device=args.device, log=lambda message: print(message, file=sys.stderr))
    seconds = time.perf_counter() - start
    return pd.read_parquet(out, columns=["chrom", "pos", "alt", "llr"]), seconds


def summary(llr: np.ndarray) -> dict:
    """count, mean/median/quantiles of |llr| and the mean llr of one group (None where empty)."""
    if llr.size == 0:
        return {"n": 0, "mean_abs_llr": None, "median_abs_llr": None,
                **{f"q{round(q * 100)}_abs_llr": None for q in QUANTILES}, "mean_llr": None}
    magnitude = np.abs(llr)
    return {"n": int(llr.size), "mean_abs_llr": float(magnitude.mean()),
            "median_abs_llr": float(np.median(magnitude)),
            **{f"q{round(q * 100)}_abs_llr": float(np.quantile(magnitude, q)) for q in QUANTILES},
            "mean_llr": float(llr.mean())}


def groups(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The llr values of each group the report and the comparisons name."""
    llr, position, effect = table["llr"].to_numpy(), table["codon_pos"].to_numpy(), table["effect"].to_numpy()
    out = {f"codon position {p}": llr[position == p] for p in (1, 2, 3)}
    out.update({name: llr[effect == name] for name in codon_snvs.CLASSES})
    out["non-synonymous"] = llr[effect != "synonymous"]
    out["synonymous at position 3"] = llr[(effect == "synonymous") & (position == 3)]
    out["non-synonymous at position 3"] = llr[(effect != "synonymous") & (position == 3)]
    return out


def smaller(a: np.ndarray, b: np.ndarray, alpha: float) -> dict:
    """One-sided Mann-Whitney U test that |a| tends to be smaller than |b|, with its effect size."""
    from scipy.stats import mannwhitneyu

    result = {"n_a": int(a.size), "n_b": int(b.size)}
    if a.size == 0 or b.size == 0:
        return {**result, "p_value": None, "rank_biserial": None, "mean_abs_ratio": None, "holds": None}
    a, b = np.abs(a), np.abs(b)
    test = mannwhitneyu(a, b, alternative="less", method="asymptotic")
    u = float(test.statistic)  # pairs with a > b, plus half the ties
    ratio = float(a.mean() / b.mean()) if b.mean() > 0 else None
    return {**result, "mean_abs_a": float(a.mean()), "mean_abs_b": float(b.mean()), "mean_abs_ratio": ratio,
            "u": u, "p_value": float(test.pvalue), "rank_biserial": 1 - 2 * u / (a.size * b.size),
            "holds": bool(a.mean() < b.mean() and test.pvalue < alpha)}


def evaluate(table: pd.DataFrame, alpha: float) -> dict:
    """The per-group summaries and the comparisons of one model's scores (overlaps excluded)."""
    values = groups(table)
    return {"groups": {name: summary(llr) for name, llr in values.items()},
            "comparisons": {name: {"a": a, "b": b, **smaller(values[a], values[b], alpha)}
                            for name, a, b in COMPARISONS}}


def verdict(model: dict, control: dict | None) -> dict:
    """Whether issue 18's criterion holds (position 3 below 1 and 2, synonymous below non-synonymous),
    for the model and the control, and per comparison whether the effect is learned."""
    needed = ("position_3_vs_1", "position_3_vs_2", "synonymous_vs_non_synonymous")
    out = {"model_meets_criterion": all(model["comparisons"][n]["holds"] for n in needed)}
    if control is not None:
        out["control_meets_criterion"] = all(control["comparisons"][n]["holds"] for n in needed)
        out["learned"] = {n: bool(model["comparisons"][n]["holds"]) and not control["comparisons"][n]["holds"]
                          for n, _, _ in COMPARISONS}
    return out


def _f(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def markdown(report: dict) -> str:
    """The report's tables: groups per scored model, then the comparisons side by side."""
    q = [f"q{round(x * 100)}" for x in QUANTILES]
    lines = []
    for label, result in report["results"].items():
        lines += [f"### {label}", "", f"| group | n | mean abs llr | median | {' | '.join(q)} | mean llr |",
                  "|---|---:|---:|---:|" + "---:|" * len(q) + "---:|"]
        for name, s in result["groups"].items():
            cells = [s["n"], s["mean_abs_llr"], s["median_abs_llr"], *(s[f"{k}_abs_llr"] for k in q),
                     s["mean_llr"]]
            lines.append(f"| {name} | " + " | ".join(_f(c) for c in cells) + " |")
        lines.append("")
    labels = list(report["results"])
    lines += ["### |llr| smaller in a than in b (one-sided Mann-Whitney U)", "",
              "| comparison | " + " | ".join(f"{m}: mean a / mean b, p, r, holds" for m in labels) + " |",
              "|---|" + "---|" * len(labels)]
    for name, _, _ in COMPARISONS:
        cells = []
        for m in labels:
            c = report["results"][m]["comparisons"][name]
            cells.append(f"{_f(c.get('mean_abs_a'))} / {_f(c.get('mean_abs_b'))}, p={_f(c['p_value'], 3)}, "
                         f"r={_f(c['rank_biserial'], 3)}, {c['holds']}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "verdict: " + json.dumps(report["verdict"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a model directory with a masked-LM head (or a shipped model's name)")
    ap.add_argument("genome", type=Path, help="genome FASTA")
    ap.add_argument("gff3", type=Path, help="its annotation (GFF3 with CDS lines)")
    ap.add_argument("--region", action="append", default=[],
                    help="CHROM or CHROM:START-END (1-based); only CDS wholly inside (repeatable)")
    ap.add_argument("--max-cds", type=int, help="at most this many CDS (a seeded choice)")
    ap.add_argument("--sample", type=int,
                    help="at most this many coding bases (3 SNVs each; a seeded choice)")
    ap.add_argument("--seed", type=int, default=0, help="for --max-cds, --sample and the control's weights")
    ap.add_argument("--window", type=int, default=1024, help="bases of context per SNV (score-variants)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                    help="also score a freshly initialised model of the same architecture (default: on)")
    ap.add_argument("--alpha", type=float, default=0.01, help="significance level of 'holds'")
    ap.add_argument("--json", type=Path, help="write the report here")
    ap.add_argument("--vcf", type=Path, help="keep the annotated VCF of the SNVs scored here")
    ap.add_argument("--table", type=Path,
                    help="keep every SNV with its annotation and llr(s) here (.parquet)")
    args = ap.parse_args(argv)
    for name in ("max_cds", "sample", "window", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")

    started = time.perf_counter()
    table, counts, lengths = coding_snvs(args.genome, args.gff3, regions=args.region, max_cds=args.max_cds,
                                         sample=args.sample, seed=args.seed)
    print(f"zero_shot_codons: {counts['snvs_scored']} SNVs at {counts['snvs_scored'] // 3} coding bases of "
          f"{counts['cds_used']} CDS to score", file=sys.stderr)
    results, timing = {}, {}
    with tempfile.TemporaryDirectory(prefix="zero_shot_codons.") as tmp:
        tmp = Path(tmp)
        genome = tmp / ("genome" + "".join(args.genome.suffixes[-2:]))
        genome.symlink_to(args.genome.resolve())  # its index goes to tmp, not beside the input
        vcf = codon_snvs.write_vcf(table, lengths, args.vcf or tmp / "snvs.vcf")
        models = {"model": args.model}
        if args.control:
            models["control (untrained)"] = control_model(args.model, tmp / "control", args.seed)
        for label, model in models.items():
            scores, seconds = score(model, vcf, genome, tmp / f"scores{len(timing)}.parquet", args)
            column = "llr" if label == "model" else "llr_control"
            table = table.merge(scores.rename(columns={"llr": column}), on=["chrom", "pos", "alt"],
                                how="left")
            missing = int(table[column].isna().sum())
            if missing:
                raise InputDataError(f"{vcf}: {missing} SNV(s) came back from score-variants without a score")
            results[label] = evaluate(table[[column, "codon_pos", "effect"]].rename(columns={column: "llr"}),
                                      args.alpha)
            timing[label] = {"seconds": round(seconds, 2), "snvs_per_s": round(len(table) / seconds, 1)}
    report = {
        "info": {"model": str(args.model), "genome": str(args.genome), "gff3": str(args.gff3),
                 "regions": args.region, "window": args.window, "batch_size": args.batch_size,
                 "device": args.device, "seed": args.seed, "max_cds": args.max_cds, "sample": args.sample,
                 "alpha": args.alpha, **counts, "effects_scored": codon_snvs.effect_counts(table),
                 "scoring": timing, "total_seconds": round(time.perf_counter() - started, 2)},
        "results": results,
        "verdict": verdict(results["model"], results.get("control (untrained)")),
    }
    print(markdown(report))
    if args.table:
        with replacing(args.table) as tmp_table:
            table.to_parquet(tmp_table, index=False)
    if args.json:
        with replacing(args.json) as tmp_json:
            tmp_json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    try:
        main()
    except GenomambaError as exc:  # the message names the file and what to change; no traceback
        print(f"zero_shot_codons: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
