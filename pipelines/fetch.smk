# Stage fetch: copy or download each file of each genome and verify its sha256 (genomamba fetch).


rule fetch_file:
    output:
        f"{RESULTS}/genomes/{{genome}}/{{file}}",
    log:
        f"{RESULTS}/logs/fetch/{{genome}}/{{file}}.log",
    conda:
        "envs/genomamba.yaml"
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        manifest=config["manifest"],
        out_dir=fetch_dir,
    shell:
        "genomamba fetch {params.manifest:q} --genome {wildcards.genome:q} --file {wildcards.file:q}"
        " -o {params.out_dir:q} > {log:q} 2>&1"


STAGE_TARGETS["fetch"] = lambda: [path for genome in GENOMES for path in genome_files(genome)]
