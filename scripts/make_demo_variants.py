"""Write data/demo/yeast_chrI_snvs.vcf: the demo's variants for `genomamba score-variants`.

Synthetic, not observed variants: every alternative base at 40 positions inside CDS features of
yeast chrI and 40 positions outside every annotated feature (the chromosome's own extent line
aside), drawn with a fixed seed from the committed genome and annotation (data/demo/). The ID
column says which class a position is in (cds_N, intergenic_N), so a demo run can compare the
model's scores of the two. Deterministic: rerunning it rewrites the same file (sha256 in
docs/data.md and data_manifests/demo.yaml).

    python scripts/make_demo_variants.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genomamba.alphabet import decode
from genomamba.io.fasta import read_fasta
from genomamba.tasks.coding import read_gff3_intervals

ROOT = Path(__file__).resolve().parents[1]
FASTA, GFF3 = ROOT / "data/demo/yeast_chrI_chrII.fa", ROOT / "data/demo/yeast_chrI_chrII.gff3"
OUT = ROOT / "data/demo/yeast_chrI_snvs.vcf"
CHROM, PER_CLASS, SEED = "chrI", 40, 20261202


def chromosome(path: Path, name: str) -> str:
    """Record ``name`` of the FASTA as upper-case letters."""
    (record,) = [r for r in read_fasta(path, softmask=False) if r.name == name]
    return decode(record.ids).decode("ascii")


def feature_masks(path: Path, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inside a CDS, inside any feature but the chromosome's own extent) per position of CHROM."""
    cds, any_feature = np.zeros(length, bool), np.zeros(length, bool)
    for kind, spans in read_gff3_intervals(path)[CHROM].items():
        if kind == "chromosome":
            continue
        for start, end in spans:
            any_feature[start:end] = True
            if kind == "CDS":
                cds[start:end] = True
    return cds, any_feature


def main() -> None:
    seq = chromosome(FASTA, CHROM)
    cds, any_feature = feature_masks(GFF3, len(seq))
    is_base = np.array([b in "ACGT" for b in seq])
    rng = np.random.default_rng(SEED)
    picks = []
    for label, where in (("cds", cds & is_base), ("intergenic", ~any_feature & is_base)):
        chosen = np.sort(rng.choice(np.flatnonzero(where), PER_CLASS, replace=False))
        picks += [(int(p), f"{label}_{i}") for i, p in enumerate(chosen)]
    lines = ["##fileformat=VCFv4.2",
             "##source=genomamba scripts/make_demo_variants.py (synthetic: every alternative base at "
             f"{PER_CLASS} CDS and {PER_CLASS} intergenic positions of {CHROM}, seed {SEED})",
             f"##contig=<ID={CHROM},length={len(seq)}>",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for position, name in sorted(picks):
        ref = seq[position]
        alts = ",".join(b for b in "ACGT" if b != ref)
        lines.append(f"{CHROM}\t{position + 1}\t{name}\t{ref}\t{alts}\t.\t.\t.")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"{OUT}: {len(picks)} positions, {3 * len(picks)} SNVs")


if __name__ == "__main__":
    main()
