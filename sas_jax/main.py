"""Pre-training entry point.

    python -m sas_jax.main --config=configs/sas_small.py --workdir=/tmp/sas_small

Short on purpose: parse the locked config, set up JAX, call
`sas_jax.train.train_and_evaluate`, which notebooks and tests call directly.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from sas_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and the config.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "Multi-process: coordinator host:port "
                                   "(SLURM is auto-detected; also SAS_COORDINATOR).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process: this process's id.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import jax  # noqa: PLC0415 (after flag parsing, so --help is fast)

    from sas_jax import distributed, train  # noqa: PLC0415

    # Before anything touches a device: join the other processes, if any.
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    logging.set_verbosity(logging.WARNING)  # orbax logs every save step at INFO
    jax.config.update("jax_threefry_partitionable", True)  # sharded RNG without gathers
    print(f"JAX process {jax.process_index()}/{jax.process_count()}, "
          f"{jax.local_device_count()} local / {jax.device_count()} global devices "
          f"({jax.devices()[0].platform})", flush=True)
    try:
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (UserError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
