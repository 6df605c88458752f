# Stage tokenize: token shards (DESIGN.md §2) for each genome that passed validation: tokens/<genome>
# without the regions the manifest holds out, heldout_tokens/<genome> of just those (validation).

TOKENIZE = config["tokenize"]
TOKENIZE_PARAMS = {
    "window": TOKENIZE["window"],
    "stride": TOKENIZE["stride"] or TOKENIZE["window"],
    "last_window": TOKENIZE["last_window"],
    "max_n_fraction": TOKENIZE["max_n_fraction"],
    "extra": TOKENIZE["extra_args"],
}


rule tokenize_genome:
    input:
        fasta=fasta_files,
        # only genomes whose validation passed are tokenised
        report=f"{RESULTS}/validate/{{genome}}.tsv",
    output:
        directory(f"{RESULTS}/tokens/{{genome}}"),
    log:
        f"{RESULTS}/logs/tokenize/{{genome}}.log",
    conda:
        "envs/genomamba.yaml"
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        **TOKENIZE_PARAMS,
        regions=holdout_args("--exclude-region"),
    shell:
        "genomamba tokenize {input.fasta:q} -o {output:q} --window {params.window}"
        " --stride {params.stride} --last-window {params.last_window} --max-n-fraction {params.max_n_fraction}"
        " {params.regions} {params.extra} > {log:q} 2>&1"


# the same command on just the held-out regions (params is replaced whole by `with:`)
use rule tokenize_genome as tokenize_heldout with:
    output:
        directory(f"{RESULTS}/heldout_tokens/{{genome}}"),
    log:
        f"{RESULTS}/logs/tokenize/{{genome}}.heldout.log",
    params:
        **TOKENIZE_PARAMS,
        regions=holdout_args("--region"),


STAGE_TARGETS["tokenize"] = lambda: [
    *expand(f"{RESULTS}/tokens/{{genome}}", genome=TRAINING_GENOMES),
    *expand(f"{RESULTS}/heldout_tokens/{{genome}}", genome=HELDOUT_GENOMES),
]
