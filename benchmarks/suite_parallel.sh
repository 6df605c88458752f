#!/usr/bin/env bash
# `genomamba benchmark` on one GPU as one process per method (or per method and task), all writing
# into one OUT.
#
# Fine-tuning a 2-million-parameter model on 100-400-base sequences leaves an H100 mostly idle
# (each step is a few hundred small kernel launches), so methods run side by side. Each process
# stops after LIMIT seconds; results.csv keeps every finished run, and the same command resumes.
#
#   benchmarks/suite_parallel.sh SUITE OUT LIMIT SEEDS METHOD [METHOD ...]
#   TASKS="GUE_EMP_H3 GUE_prom_300_tata" benchmarks/suite_parallel.sh ...   # only these tasks
#   SPLIT_TASKS=1 TASKS="..." benchmarks/suite_parallel.sh ...              # one process per method and task
#   PUBLISHED=data_manifests/tasks/gue_published.yaml                       # for the final report
set -uo pipefail
suite=$1 out=$2 limit=$3 seeds=$4
shift 4
mkdir -p "$out/logs"
groups=()
if [ -n "${SPLIT_TASKS:-}" ]; then
  for t in ${TASKS:?SPLIT_TASKS needs TASKS}; do groups+=("--task $t"); done
else
  task_args=""
  for t in ${TASKS:-}; do task_args+=" --task $t"; done
  groups+=("$task_args")
fi
method_args=()
for method in "$@"; do
  method_args+=(--method "$method")
  for group in "${groups[@]}"; do
    log="$out/logs/$(printf '%s%s' "$method" "$group" | tr -c 'A-Za-z0-9=._-' '_').txt"
    # shellcheck disable=SC2086  # $group is a list of --task options
    OMP_NUM_THREADS=1 timeout "$limit" genomamba benchmark "$suite" --out "$out" --seeds "$seeds" \
      --method "$method" $group >>"$log" 2>&1 &
  done
done
wait
genomamba benchmark "$suite" --out "$out" --seeds "$seeds" "${method_args[@]}" \
  ${PUBLISHED:+--published "$PUBLISHED"} --report-only
