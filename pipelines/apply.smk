# Stages embed and predict: the trained models applied to the run's genomes, window by window.
#   embed:   genomamba embed of the pretrained model (or embed.model): one Parquet table per genome,
#            a row per window with its embedding (columns emb_*), for downstream classifiers;
#   predict: genomamba predict of the fine-tuned model (or predict.model): one TSV per genome, a
#            row per window with the class probabilities, and with predict.track a bedGraph track
#            of one score per window, written in the same pass.
# Each genome's validation must have passed first, as for tokenize.

EMBED, PREDICT = config["embed"], config["predict"]


rule embed:
    input:
        fasta=fasta_files,
        report=f"{RESULTS}/validate/{{genome}}.tsv",
        model=lambda wildcards: EMBED["model"] or f"{RESULTS}/pretrain/model",
    output:
        f"{RESULTS}/embed/{{genome}}.parquet",
    log:
        f"{RESULTS}/logs/embed/{{genome}}.log",
    conda:
        "envs/genomamba.yaml"
    threads: MODEL_THREADS
    resources:
        **MODEL_RESOURCES,
    params:
        launcher=GENOMAMBA_DATA_PARALLEL,
        windows=window_args(EMBED),
        pooling=EMBED["pooling"],
        extra=EMBED["extra_args"],
    shell:
        "{params.launcher} embed {input.model:q} {input.fasta:q} -o {output:q} {params.windows}"
        " --pooling {params.pooling} --threads {threads} {params.extra} > {log:q} 2>&1"


rule predict:
    input:
        fasta=fasta_files,
        report=f"{RESULTS}/validate/{{genome}}.tsv",
        model=lambda wildcards: PREDICT["model"] or f"{RESULTS}/finetune/run/model",
    output:
        **({"track": f"{RESULTS}/predict/{{genome}}.bedgraph"} if PREDICT["track"] else {}),
        table=f"{RESULTS}/predict/{{genome}}.tsv",
    log:
        f"{RESULTS}/logs/predict/{{genome}}.log",
    conda:
        "envs/genomamba.yaml"
    threads: MODEL_THREADS
    resources:
        **MODEL_RESOURCES,
    params:
        launcher=GENOMAMBA_DATA_PARALLEL,
        windows=window_args(PREDICT),
        track=lambda wildcards, output: track_args(PREDICT, output),
        extra=PREDICT["extra_args"],
    shell:
        "{params.launcher} predict {input.model:q} {input.fasta:q} -o {output.table:q} {params.windows}"
        " {params.track} --threads {threads} {params.extra} > {log:q} 2>&1"


PREDICT_OUTPUTS = ["tsv", "bedgraph"] if PREDICT["track"] else ["tsv"]
STAGE_TARGETS["embed"] = lambda: [f"{RESULTS}/embed/{g}.parquet" for g in applied_genomes(EMBED)]
STAGE_TARGETS["predict"] = lambda: [
    f"{RESULTS}/predict/{g}.{suffix}" for g in applied_genomes(PREDICT) for suffix in PREDICT_OUTPUTS
]
