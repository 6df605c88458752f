# Stage finetune: a labelled task built from one genome's FASTA + GFF3 (genomamba make-task coding:
# windows inside a CDS vs intergenic windows, the test_chroms held out as the test split), the
# pretrained model fine-tuned on it (genomamba finetune), and the best model evaluated on the
# held-out chromosomes (genomamba evaluate).

FINETUNE = config["finetune"]
if "finetune" in config["stages"]:
    if FINETUNE["genome"] not in GENOMES:
        raise ValueError(
            f"finetune.genome must be one of the run's genomes ({', '.join(GENOMES)}), "
            f"got {FINETUNE['genome']!r}"
        )
    if not genome_files(FINETUNE["genome"], "annotation"):
        raise ValueError(
            f"finetune.genome {FINETUNE['genome']!r} has no annotation (GFF3) file in the manifest"
        )
    if not FINETUNE["test_chroms"]:
        raise ValueError("finetune.test_chroms must name at least one record to hold out as the test split")


rule make_task:
    input:
        fasta=lambda wildcards: genome_files(FINETUNE["genome"], "fasta"),
        gff3=lambda wildcards: genome_files(FINETUNE["genome"], "annotation"),
        # only a genome whose validation passed is used
        report=f"{RESULTS}/validate/{FINETUNE['genome']}.tsv",
    output:
        f"{RESULTS}/finetune/task.csv",
    log:
        f"{RESULTS}/logs/finetune/make_task.log",
    conda:
        "envs/genomamba.yaml"
    threads: 1
    resources:
        **LIGHT_RESOURCES,
    params:
        test_chroms=" ".join(f"--test-chrom {c}" for c in FINETUNE["test_chroms"]),
        window=FINETUNE["window"],
        per_class=FINETUNE["per_class"],
        group_size=FINETUNE["group_size"],
        seed=FINETUNE["seed"],
    shell:
        "genomamba make-task coding --fasta {input.fasta:q} --gff3 {input.gff3:q} -o {output:q}"
        " {params.test_chroms} --window {params.window} --per-class {params.per_class}"
        " --group-size {params.group_size} --seed {params.seed} > {log:q} 2>&1"


rule finetune:
    input:
        task=f"{RESULTS}/finetune/task.csv",
        # finetune.model, or the pretrain stage's model
        model=lambda wildcards: FINETUNE["model"] or f"{RESULTS}/pretrain/model",
    output:
        metrics=f"{RESULTS}/finetune/run/metrics.json",
        model=directory(f"{RESULTS}/finetune/run/model"),
    log:
        f"{RESULTS}/logs/finetune/finetune.log",
    conda:
        "envs/genomamba.yaml"
    threads: MODEL_THREADS
    resources:
        **MODEL_RESOURCES,
    params:
        launcher=GENOMAMBA_DATA_PARALLEL,
        out=lambda wildcards, output: str(Path(output.metrics).parent),
        epochs=FINETUNE["epochs"],
        batch_size=FINETUNE["batch_size"],
        lr=FINETUNE["lr"],
        seed=FINETUNE["seed"],
        extra=FINETUNE["extra_args"],
    shell:
        # --overwrite: a failed earlier attempt may have left files in the run folder
        "{params.launcher} finetune --train {input.task:q} --model {input.model:q} --out {params.out:q} --overwrite"
        " --positive coding --epochs {params.epochs} --batch-size {params.batch_size} --lr {params.lr}"
        " --seed {params.seed} --threads {threads} {params.extra} > {log:q} 2>&1"


rule evaluate:
    input:
        task=f"{RESULTS}/finetune/task.csv",
        model=f"{RESULTS}/finetune/run/model",
    output:
        metrics=report(
            f"{RESULTS}/finetune/evaluate/metrics.json",
            caption="report/evaluate_metrics.rst",
            category="Fine-tuning",
            labels={"result": "test metrics"},
        ),
        roc=report(
            f"{RESULTS}/finetune/evaluate/roc.png",
            caption="report/evaluate_roc.rst",
            category="Fine-tuning",
            labels={"result": "ROC curve"},
        ),
        confusion=report(
            f"{RESULTS}/finetune/evaluate/confusion_matrix.png",
            caption="report/evaluate_confusion.rst",
            category="Fine-tuning",
            labels={"result": "confusion matrix"},
        ),
    log:
        f"{RESULTS}/logs/finetune/evaluate.log",
    conda:
        "envs/genomamba.yaml"
    threads: MODEL_THREADS
    resources:
        **ONE_GPU_RESOURCES,
    params:
        out=lambda wildcards, output: str(Path(output.metrics).parent),
    shell:
        "genomamba evaluate {input.model:q} --data {input.task:q} --split test --out {params.out:q}"
        " --threads {threads} > {log:q} 2>&1"


STAGE_TARGETS["finetune"] = lambda: [
    f"{RESULTS}/finetune/run/metrics.json",
    f"{RESULTS}/finetune/evaluate/metrics.json",
]
