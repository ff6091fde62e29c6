#!/usr/bin/env bash
# One shard of a `weft explore` search spread over many machines: the batch system starts
# this script N times, each with its own index, and weft runs only that part of the search.
# The parts are disjoint and together cover the whole search, so no coordinator is needed:
# each shard writes its failures (and minimized traces) under OUT/shard-I/ and a JSON
# summary next to them; collect them when all have finished.
#
#   Slurm:       sbatch --array=1-8 scripts/explore-shard.sh GUEST [weft explore options]
#   Kubernetes:  an Indexed Job with completions: 8 (JOB_COMPLETION_INDEX is 0-based)
#   By hand:     SHARD=3 SHARDS=8 scripts/explore-shard.sh GUEST --schedules 100000
#
# Environment: SHARDS (default: the array size, else 1), SHARD (1-based; default from the
# batch system), OUT (default explore-out), WEFT (default: weft on PATH).
set -euo pipefail

guest=${1:?usage: explore-shard.sh GUEST [weft explore options]}
shift

if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
    shard=${SHARD:-$SLURM_ARRAY_TASK_ID}
    shards=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:-1}}
elif [[ -n "${JOB_COMPLETION_INDEX:-}" ]]; then
    shard=${SHARD:-$((JOB_COMPLETION_INDEX + 1))}
    shards=${SHARDS:?set SHARDS to the Job completions count}
else
    shard=${SHARD:-1}
    shards=${SHARDS:-1}
fi

out="${OUT:-explore-out}/shard-$shard"
mkdir -p "$out"
status=0
"${WEFT:-weft}" explore "$guest" --shard "$shard/$shards" --out "$out" --json "$@" \
    > "$out/summary.json" || status=$?
# 0: no failure in this shard, 1: failure(s) found and saved; anything else is an error.
if [[ $status -gt 1 ]]; then
    echo "explore-shard: weft failed with status $status (shard $shard/$shards)" >&2
    exit "$status"
fi
echo "shard $shard/$shards: $(grep -c '"index"' "$out/summary.json" || true) failure kind(s), see $out"
