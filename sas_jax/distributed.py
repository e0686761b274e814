"""Multi-process start-up: JAX's own multi-controller runtime, nothing else.

One process per GPU (or per node) on every host; `jax.distributed.initialize`
connects them and XLA's collectives (NCCL on GPU, gloo on CPU) do the rest.
SLURM is auto-detected by JAX (SLURM_NTASKS etc.); elsewhere the coordinator
address, process count and id come from flags or the environment:

    SAS_COORDINATOR=host:port  SAS_NUM_PROCESSES=N  SAS_PROCESS_ID=i
"""
from __future__ import annotations

import os

import jax


def requested(coordinator: str | None = None, num_processes: int | None = None,
              process_id: int | None = None) -> dict | None:
    """The explicit initialize() arguments, from flags then environment; None if single-process."""
    coordinator = coordinator or os.environ.get("SAS_COORDINATOR") or None
    num = num_processes if num_processes is not None else os.environ.get("SAS_NUM_PROCESSES")
    pid = process_id if process_id is not None else os.environ.get("SAS_PROCESS_ID")
    if coordinator is None and num is None and pid is None:
        return None
    if coordinator is None or num is None or pid is None:
        raise ValueError("multi-process start needs all of coordinator address, process count and "
                         "process id (flags --coordinator/--num_processes/--process_id or SAS_* env)")
    return {"coordinator_address": coordinator, "num_processes": int(num), "process_id": int(pid)}


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Initialises jax.distributed when several processes are asked for; a no-op otherwise."""
    args = requested(coordinator, num_processes, process_id)
    if args is None and int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return  # one process: nothing to connect
    # CPU collectives across processes (tests, laptops) go through gloo; this only
    # affects the CPU backend, and must be set before any backend starts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args is None:
        jax.distributed.initialize()  # SLURM (or another cluster JAX detects)
    else:
        jax.distributed.initialize(**args)


def all_agree(flag: bool) -> bool:
    """True on every process if `flag` is True on any (e.g. a SIGTERM seen by one host)."""
    if jax.process_count() == 1:
        return bool(flag)
    import numpy as np  # noqa: PLC0415
    from jax.experimental import multihost_utils  # noqa: PLC0415

    return bool(np.asarray(multihost_utils.process_allgather(np.asarray([flag], np.int32))).any())


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # noqa: PLC0415

        multihost_utils.sync_global_devices(name)
