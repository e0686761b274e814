# shellcheck shell=bash
# XLA / NCCL / JAX settings for GPU training, kept in one place. Source it:
#     source launch/xla_env.sh
# Set SAS_NO_XLA_FLAGS=1 to skip the XLA flags (e.g. when a jaxlib rejects one:
# XLA aborts on unknown flags, and their set changes between releases).

if [ "${SAS_NO_XLA_FLAGS:-0}" != "1" ]; then
  # Overlap collectives (gradient all-reduce, FSDP all-gathers) with compute.
  XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
  export XLA_FLAGS
fi

# Let XLA take most of the GPU memory up front (cuDNN/NCCL need the rest).
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
# Persistent compilation cache: a restarted or preempted job skips the compile.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$HOME/.cache/sas_jax/jax}"
# NCCL: warnings only; leave transport selection (IB, NVLink, NVLS) to NCCL's defaults,
# set NCCL_SOCKET_IFNAME / NCCL_IB_HCA here if your cluster needs them.
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
# TensorFlow (pulled in only by tensorflow-datasets) must not grab the GPUs.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
