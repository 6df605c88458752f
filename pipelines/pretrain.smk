# Stage pretrain: masked-LM pretraining on the token shards of every genome of the run, validated
# (pretrain.validation) on the held-out shards of every genome whose manifest entry holds some out.
# Always called with --resume: a fresh start when results/<run>/pretrain has no checkpoint, and
# an exact continuation after an interrupted (SIGTERM'd) job.

PRETRAIN = config["pretrain"]
VALIDATION_GENOMES = HELDOUT_GENOMES if PRETRAIN["validation"] else []


rule pretrain:
    input:
        shards=expand(f"{RESULTS}/tokens/{{genome}}", genome=TRAINING_GENOMES),
        heldout=expand(f"{RESULTS}/heldout_tokens/{{genome}}", genome=VALIDATION_GENOMES),
    output:
        model=directory(f"{RESULTS}/pretrain/model"),
        curves=report(
            f"{RESULTS}/pretrain/metrics.png",
            caption="report/pretrain_curves.rst",
            category="Pretraining",
            labels={"result": "loss and masked accuracy"},
        ),
    log:
        f"{RESULTS}/logs/pretrain.log",
    conda:
        "envs/genomamba.yaml"
    threads: MODEL_THREADS
    resources:
        **MODEL_RESOURCES,
    params:
        launcher=GENOMAMBA_DATA_PARALLEL,
        run_dir=lambda wildcards, output: str(Path(output.model).parent),
        data=lambda wildcards, input: " ".join(f"--data {d}" for d in input.shards),
        val_data=lambda wildcards, input: " ".join(f"--val-data {d}" for d in input.heldout),
        val_seq_lens=" ".join(f"--val-seq-len {n}" for n in PRETRAIN["val_seq_lens"]),
        preset=PRETRAIN["preset"],
        max_steps=PRETRAIN["max_steps"],
        seq_len=PRETRAIN["seq_len"],
        batch_size=PRETRAIN["batch_size"],
        seed=PRETRAIN["seed"],
        extra=PRETRAIN["extra_args"],
    shell:
        "{params.launcher} pretrain {params.data} {params.val_data} {params.val_seq_lens} --preset {params.preset}"
        " --out {params.run_dir:q} --resume"
        " --max-steps {params.max_steps} --seq-len {params.seq_len} --batch-size {params.batch_size}"
        " --seed {params.seed} --threads {threads} {params.extra} > {log:q} 2>&1"


STAGE_TARGETS["pretrain"] = lambda: [f"{RESULTS}/pretrain/model"]
