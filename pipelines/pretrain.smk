# Stage pretrain: masked-LM pretraining on the token shards of every genome of the run.
# Always called with --resume: a fresh start when results/<run>/pretrain has no checkpoint, and
# an exact continuation after an interrupted (SIGTERM'd) job.

PRETRAIN = config["pretrain"]


rule pretrain:
    input:
        shards=expand(f"{RESULTS}/tokens/{{genome}}", genome=TRAINING_GENOMES),
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
        run_dir=lambda wildcards, output: str(Path(output.model).parent),
        data=lambda wildcards, input: " ".join(f"--data {d}" for d in input.shards),
        preset=PRETRAIN["preset"],
        max_steps=PRETRAIN["max_steps"],
        seq_len=PRETRAIN["seq_len"],
        batch_size=PRETRAIN["batch_size"],
        seed=PRETRAIN["seed"],
        extra=PRETRAIN["extra_args"],
    shell:
        "genomamba pretrain {params.data} --preset {params.preset} --out {params.run_dir:q} --resume"
        " --max-steps {params.max_steps} --seq-len {params.seq_len} --batch-size {params.batch_size}"
        " --seed {params.seed} --threads {threads} {params.extra} > {log:q} 2>&1"


STAGE_TARGETS["pretrain"] = lambda: [f"{RESULTS}/pretrain/model"]
