#!/usr/bin/env bash
# `genomamba benchmark` on one GPU as one process per method, all writing into one OUT.
#
# Fine-tuning a 2-million-parameter model on 100-400-base sequences leaves an H100 mostly idle
# (each step is a few hundred small kernel launches), so methods run side by side. Each process
# stops after LIMIT seconds; results.csv keeps every finished run, and the same command resumes.
#
#   benchmarks/suite_parallel.sh SUITE OUT LIMIT SEEDS METHOD [METHOD ...]
#   TASKS="GUE_EMP_H3 GUE_prom_300_tata" benchmarks/suite_parallel.sh ...   # only these tasks
set -uo pipefail
suite=$1 out=$2 limit=$3 seeds=$4
shift 4
mkdir -p "$out/logs"
task_args=()
for t in ${TASKS:-}; do task_args+=(--task "$t"); done
method_args=()
for method in "$@"; do
  method_args+=(--method "$method")
  log="$out/logs/$(printf '%s' "$method" | tr -c 'A-Za-z0-9=._-' '_').txt"
  OMP_NUM_THREADS=2 timeout "$limit" genomamba benchmark "$suite" --out "$out" --seeds "$seeds" \
    --method "$method" "${task_args[@]}" >>"$log" 2>&1 &
done
wait
genomamba benchmark "$suite" --out "$out" --seeds "$seeds" "${method_args[@]}" "${task_args[@]}" \
  ${PUBLISHED:+--published "$PUBLISHED"} --report-only
