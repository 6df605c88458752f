# Stage tokenize: token shards (DESIGN.md §2) for each genome that passed validation.

TOKENIZE = config["tokenize"]


rule tokenize_genome:
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    input:
        fasta=fasta_files,
        # only genomes whose validation passed are tokenised
        report=f"{RESULTS}/validate/{{genome}}.tsv",
    output:
        directory(f"{RESULTS}/tokens/{{genome}}"),
    log:
        f"{RESULTS}/logs/tokenize/{{genome}}.log",
    params:
        window=TOKENIZE["window"],
        stride=TOKENIZE["stride"] or TOKENIZE["window"],
        last_window=TOKENIZE["last_window"],
        max_n_fraction=TOKENIZE["max_n_fraction"],
        extra=TOKENIZE["extra_args"],
    shell:
        "genomamba tokenize {input.fasta:q} -o {output:q} --window {params.window}"
        " --stride {params.stride} --last-window {params.last_window} --max-n-fraction {params.max_n_fraction}"
        " {params.extra} > {log:q} 2>&1"


STAGE_TARGETS["tokenize"] = lambda: expand(f"{RESULTS}/tokens/{{genome}}", genome=GENOMES)
