#!/usr/bin/env bash
# N processes on this machine joined by jax.distributed (tests, debugging the
# multi-process paths on a laptop; on CPU each process gets DEVICES fake devices).
#
#     NPROC=2 DEVICES=4 bash launch/local_multiprocess.sh configs/sas_small.py:tiny /tmp/mp \
#         --config.data.corpus_dir=/tmp/corpus --config.model.vocab_size=-1
set -euo pipefail

CONFIG="${1:?usage: local_multiprocess.sh CONFIG WORKDIR [--config.overrides...]}"
WORKDIR="${2:?usage: local_multiprocess.sh CONFIG WORKDIR [--config.overrides...]}"
shift 2
NPROC="${NPROC:-2}"
DEVICES="${DEVICES:-4}"
PORT="${PORT:-$((20000 + RANDOM % 20000))}"
PLATFORM="${JAX_PLATFORMS:-cpu}"

pids=()
for ((i = 0; i < NPROC; i++)); do
  JAX_PLATFORMS="$PLATFORM" \
  XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$DEVICES" \
  SAS_COORDINATOR="localhost:$PORT" SAS_NUM_PROCESSES="$NPROC" SAS_PROCESS_ID="$i" \
    python -m sas_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@" &
  pids+=("$!")
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit "$status"
