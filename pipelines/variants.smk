# Stage variants: genomamba score-variants of the pretrained masked-LM (or variants.model) over
# every VCF of the run's genomes (manifest files with role `variants`): one TSV per VCF, a row per
# SNV allele with log P(ref), log P(alt) and their ratio (llr) at the masked variant position.
# Each genome's validation must have passed first, as for tokenize.
VARIANTS = config["variants"]


rule score_variants:
    input:
        vcf=variants_vcf,
        fasta=single_fasta,
        report=f"{RESULTS}/validate/{{genome}}.tsv",
        model=lambda wildcards: VARIANTS["model"] or f"{RESULTS}/pretrain/model",
    output:
        report(
            f"{RESULTS}/variants/{{genome}}/{{vcf}}.tsv",
            caption="report/variant_scores.rst",
            category="Variant scores",
            labels={"genome": "{genome}", "VCF": "{vcf}"},
        ),
    log:
        f"{RESULTS}/logs/variants/{{genome}}/{{vcf}}.log",
    conda:
        "envs/genomamba.yaml"
    threads: MODEL_THREADS
    resources:
        **MODEL_RESOURCES,
    params:
        launcher=GENOMAMBA_DATA_PARALLEL,
        window=VARIANTS["window"],
        extra=VARIANTS["extra_args"],
    shell:
        "{params.launcher} score-variants {input.model:q} {input.vcf:q} --genome {input.fasta:q} -o {output:q}"
        " --window {params.window} --threads {threads} {params.extra} > {log:q} 2>&1"


STAGE_TARGETS["variants"] = lambda: [f"{RESULTS}/variants/{g}/{v}.tsv" for g, v in variant_sets()]
