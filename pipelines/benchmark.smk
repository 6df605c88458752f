# Stage benchmark: genomamba benchmark of the configured suites (folders of labelled tasks) with the
# configured methods and seeds. results.csv keeps every finished run, so a rerun after a failure
# resumes where the last one stopped.
if "benchmark" in config["stages"] and not BENCHMARK["suites"]:
    raise ValueError("benchmark.suites must name at least one suite folder when the benchmark stage runs")


rule benchmark:
    input:
        suites=BENCHMARK["suites"],
        model=benchmark_model,  # pipelines/common.smk
    output:
        table=report(
            f"{RESULTS}/benchmark/results.csv",
            caption="report/benchmark_table.rst",
            category="Benchmark",
            labels={"result": "every run"},
        ),
        summary=f"{RESULTS}/benchmark/results.md",
        plot=report(
            f"{RESULTS}/benchmark/results.png",
            caption="report/benchmark_plot.rst",
            category="Benchmark",
            labels={"result": "mean and spread per task"},
        ),
    log:
        f"{RESULTS}/logs/benchmark/benchmark.log",
    conda:
        "envs/genomamba.yaml"
    threads: MODEL_THREADS
    resources:
        **ONE_GPU_RESOURCES,
    params:
        out=lambda wildcards, output: str(Path(output.table).parent),
        methods=" ".join(f"--method {shlex.quote(m)}" for m in BENCHMARK["methods"]),
        tasks=" ".join(f"--task {shlex.quote(t)}" for t in BENCHMARK["tasks"] or []),
        model=lambda wildcards, input: f"--model {shlex.quote(input.model)}" if input.model else "",
        published=f"--published {shlex.quote(BENCHMARK['published'])}" if BENCHMARK["published"] else "",
        seeds=BENCHMARK["seeds"],
        extra=BENCHMARK["extra_args"],
    shell:
        "genomamba benchmark {input.suites:q} --out {params.out:q} {params.methods} {params.tasks}"
        " {params.model} {params.published} --seeds {params.seeds} --threads {threads} {params.extra}"
        " > {log:q} 2>&1"


STAGE_TARGETS["benchmark"] = lambda: [f"{RESULTS}/benchmark/results.md", f"{RESULTS}/benchmark/results.png"]
