# Stage validate: a per-record TSV report for each genome; invalid input (exit 65) stops the run.


rule validate_genome:
    input:
        fasta_files,
    output:
        report(
            f"{RESULTS}/validate/{{genome}}.tsv",
            caption="report/validate.rst",
            category="Genomes",
            labels={"genome": "{genome}", "result": "validation report"},
        ),
    log:
        f"{RESULTS}/logs/validate/{{genome}}.log",
    conda:
        "envs/genomamba.yaml"
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        extra=config["validate"]["extra_args"],
    shell:
        "genomamba validate {input:q} --format tsv {params.extra} > {output:q} 2> {log:q}"


STAGE_TARGETS["validate"] = lambda: expand(f"{RESULTS}/validate/{{genome}}.tsv", genome=GENOMES)
