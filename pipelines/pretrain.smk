# Stage pretrain: masked-LM pretraining on the token shards of every genome of the run.
# Always called with --resume: a fresh start when results/<run>/pretrain has no checkpoint, and
# an exact continuation after an interrupted (SIGTERM'd) job.

PRETRAIN = config["pretrain"]


rule pretrain:
    threads: MODEL_THREADS
    resources:
        **MODEL_RESOURCES,
    input:
        shards=expand(f"{RESULTS}/tokens/{{genome}}", genome=GENOMES),
    output:
        directory(f"{RESULTS}/pretrain/model"),
    log:
        f"{RESULTS}/logs/pretrain.log",
    params:
        run_dir=lambda wildcards, output: str(Path(output[0]).parent),
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
        " --seed {params.seed} {params.extra} > {log:q} 2>&1"


STAGE_TARGETS["pretrain"] = lambda: [f"{RESULTS}/pretrain/model"]
