#!/usr/bin/env bash
# N processes on this machine joined by jax.distributed (tests, debugging the
# multi-process paths on a laptop; on CPU each process gets DEVICES fake devices).
#
#     NPROC=2 DEVICES=4 bash launch/local_multiprocess.sh configs/sas_small.py:tiny /tmp/mp \
#         --config.data.corpus_dir=/tmp/corpus --config.model.vocab_size=-1
#
# A process that ends badly (killed, crashed, an error of its own) leaves the others waiting in a
# collective: the script says which one in one line, gives the others GRACE seconds (default 5)
# to stop on their own (their peer watch: sas_jax/distributed.py), then kills them, and exits with
# the first bad status. Ctrl-C reaches every process (one process group): each saves and exits 130.
set -euo pipefail

CONFIG="${1:?usage: local_multiprocess.sh CONFIG WORKDIR [--config.overrides...]}"
WORKDIR="${2:?usage: local_multiprocess.sh CONFIG WORKDIR [--config.overrides...]}"
shift 2
NPROC="${NPROC:-2}"
DEVICES="${DEVICES:-4}"
PORT="${PORT:-$((20000 + RANDOM % 20000))}"
PLATFORM="${JAX_PLATFORMS:-cpu}"

GRACE="${GRACE:-5}"

trap '' INT  # Ctrl-C: the processes get it too and save; this script waits for them
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' TERM  # preemption: each process saves (and the wait goes on)
for ((i = 0; i < NPROC; i++)); do
  JAX_PLATFORMS="$PLATFORM" \
  XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$DEVICES" \
  SAS_COORDINATOR="localhost:$PORT" SAS_NUM_PROCESSES="$NPROC" SAS_PROCESS_ID="$i" \
    python -m sas_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@" &
  pids+=("$!")
done

describe() {  # an exit status in words
  if (($1 > 128)); then echo "was killed by signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null || echo '?'))"
  else echo "exited with status $1"; fi
}

status=0
live=("${pids[@]}")
while ((${#live[@]} > 0)); do
  done_pid=""
  wait -n -p done_pid "${live[@]}" 2>/dev/null && rc=0 || rc=$?  # (bash's own "Killed ..." job note: not wanted)
  if [[ -z "${done_pid:-}" ]]; then  # a trapped signal interrupted the wait: wait again
    continue
  fi
  still=()
  for pid in "${live[@]}"; do [[ "$pid" != "$done_pid" ]] && still+=("$pid"); done
  live=("${still[@]+"${still[@]}"}")
  if ((rc != 0 && status == 0)); then
    status=$rc
    for i in "${!pids[@]}"; do [[ "${pids[$i]}" == "$done_pid" ]] && lost=$i; done
    if ((rc != 130 && ${#live[@]} > 0)); then  # not a Ctrl-C, which every process got
      echo "local_multiprocess.sh: process ${lost} (pid $done_pid) $(describe "$rc"); stopping the other" \
           "processes (the re-run resumes from the newest checkpoint)" >&2
      (sleep "$GRACE"; kill -KILL "${live[@]}" 2>/dev/null) </dev/null >/dev/null 2>&1 &  # not holding our output
      killer=$!
    fi
  fi
done
if [[ -n "${killer:-}" ]]; then kill "$killer" 2>/dev/null || true; fi
exit "$status"
