"""``genomamba score-variants``: zero-shot SNV scores from a masked-LM (genomamba.infer.variants)."""

from __future__ import annotations

import click

from genomamba.cli.boundary import SYSTEM_EXIT_CODES
from genomamba.cli.console import log
from genomamba.cli.infer_options import main_progress_bar
from genomamba.cli.options import ModelDirectory
from genomamba.cli.threads import threads_option

EPILOG = """\b
Examples:
  genomamba score-variants runs/mlm/model clinvar_chr21.vcf.gz --genome hg38.fa.bgz -o chr21.parquet
  genomamba score-variants runs/mlm/model clinvar_chr21.vcf.gz --genome hg38.fa.bgz -o chr21.scored.vcf.gz
  genomamba score-variants results/demo/pretrain/model snvs.vcf --genome yeast.fa -o snvs.tsv --window 4096
  genomamba score-variants runs/mlm/model --region chr21:5,010,000-5,010,200 --genome hg38.fa.bgz -o ism.tsv

\b
Output: one row per SNV allele: chrom, pos (1-based, as in the VCF), id, ref, alt, window_start,
window_end (0-based, half-open: the bases the model read, centred on the variant), n_bases (N
in that window), log_p_ref, log_p_alt (natural log; softmax over A, C, G, T at the masked
variant position) and llr = log_p_alt - log_p_ref. Indels, multi-base, symbolic, missing, ambiguous
alleles are left out and counted in one warning. The VCF may be plain, gzip or BGZF; REF must
agree with --genome (N and IUPAC codes of the genome match any base). With --region instead of
a VCF, every position of the region gives three rows, one per other base (id "."); positions
that are N in the genome are left out and counted.

\b
VCF output (-o NAME.vcf, .vcf.gz or .bcf; needs pysam: pip install 'genomamba[vcf]'): the input
VCF with its header lines, samples and every record, the scores added as INFO fields GM_LLR and
GM_LOG_P_ALT (one per ALT allele, '.' where not an SNV), GM_LOG_P_REF, GM_WINDOW_START,
GM_WINDOW_END, GM_N_BASES, declared in the header; .vcf.gz is BGZF (tabix -p vcf indexes it).

\b
Exit codes: 0 done; 2 usage (a bad option or output suffix); 65 invalid input (a VCF line that
is malformed, on a chromosome the genome lacks, past its end or with a REF that disagrees,
naming file and line; a --region on a chromosome the genome lacks or past its end; no SNV at
all; a model that is not a masked-LM); 69 --device cuda without a GPU, or a VCF output without
pysam; 75 another genomamba process is writing the output. Nothing is written unless the whole
run succeeds.""" + SYSTEM_EXIT_CODES


@click.command("score-variants", epilog=EPILOG)
@click.argument("model_dir", type=ModelDirectory())
@click.argument("vcf", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--region", "regions", multiple=True,
              help="Instead of a VCF: every substitution of every position of CHROM:START-END "
                   "(1-based, inclusive) or CHROM (in silico saturation mutagenesis); repeatable.")
@click.option("--genome", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The genome FASTA (plain, BGZF or gzip) or GenBank file the VCF's positions are on.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="Output table: .parquet, .tsv or .csv (text ones may end in .gz); or .vcf, .vcf.gz, "
                   ".bcf: the input VCF with the scores in INFO fields.")
@click.option("--window", type=click.IntRange(min=1), default=1024,
              help="Bases of context the model reads around each variant.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16,
              help="Windows per forward pass; raise it for short windows on a GPU (1 kb windows: "
                   "256 scored 4x as many SNVs a second as 16 on an H200).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", help="Where to run.")
@click.option("--lenient", is_flag=True, help="Read invalid characters of the genome as N.")
@threads_option
def score_variants(model_dir: str, vcf: str | None, regions: tuple[str, ...], genome: str, out: str,
                   window: int, batch_size: int, device: str, lenient: bool) -> None:
    """Score every SNV of VCF (or of --region) with the pretrained masked-LM in MODEL_DIR:
    log P(alt) - log P(ref)."""
    from genomamba import api

    with main_progress_bar("score-variants", unit="variant") as progress:
        api.score_variants(model_dir, vcf, genome, out, regions=regions, window=window, batch_size=batch_size,
                           device=device, lenient=lenient, log=log, progress=progress)
