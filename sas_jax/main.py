"""Pre-training entry point.

    python -m sas_jax.main --config=configs/sas_small.py --workdir=/tmp/sas_small [--config.KEY=VALUE ...]

Short on purpose: load the config (`config_lib.load_config`, then locked), set up
JAX, call `sas_jax.train.train_and_evaluate`, which notebooks and tests call
directly. `--config` is a file (or a name of configs/) with an optional `:variant`;
`--config.a.b=v` (or `--config.a.b v`) overrides any field. A bad config, override,
flag or input is one line `error: ...` on stderr and exit 2 (`sas_jax.cli`), and the
config is loaded before anything is created on disk. Ctrl-C is a save, not a crash
(`sas_jax/interrupts.py`): exit 130.
"""
from __future__ import annotations

from absl import flags, logging

from sas_jax import cli, config_lib, files, interrupts
from sas_jax.errors import UserError

PROG = "python -m sas_jax.main"
_CONFIG = flags.DEFINE_string("config", None, "Experiment config file (path[:variant], or a name of configs/); "
                              "override any field with --config.KEY=VALUE, e.g. --config.opt.learning_rate=5e-4.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and the config.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "Multi-process: coordinator host:port "
                                   "(SLURM is auto-detected; also SAS_COORDINATOR).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process: this process's id.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv, overrides=()):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]}; flags look like --workdir=DIR and config "
                        f"overrides like --config.KEY=VALUE (see {PROG} --help)")
    # Ctrl-C from here on: quit at once with one line before the first step, a save in the loop.
    interrupts.install()
    # Before JAX, the processes and the workdir: a bad config leaves nothing behind.
    config = config_lib.load_config(_CONFIG.value, overrides)
    config.lock()
    files.check_dir(_WORKDIR.value, "--workdir")  # below a file, unwritable: one line, nothing run
    import jax  # noqa: PLC0415 (after flag parsing, so --help is fast)

    from sas_jax import distributed, train  # noqa: PLC0415

    # Before anything touches a device: join the other processes, if any.
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    interrupts.set_process(jax.process_index(), jax.process_count())
    logging.set_verbosity(logging.WARNING)  # orbax logs every save step at INFO
    jax.config.update("jax_threefry_partitionable", True)  # sharded RNG without gathers
    print(f"JAX process {jax.process_index()}/{jax.process_count()}, "
          f"{jax.local_device_count()} local / {jax.device_count()} global devices "
          f"({jax.devices()[0].platform})", flush=True)
    try:
        train.train_and_evaluate(config, _WORKDIR.value)
    except (UserError, FloatingPointError, KeyboardInterrupt):
        raise  # this process's own one-line errors
    except Exception:
        distributed.await_lost_peer()  # a peer's loss, if that is the cause, is what gets reported
        raise
    distributed.finished()  # the other processes stop watching this one (distributed.PeerWatch)
    if interrupts.requested():  # stopped by Ctrl-C and saved: the shell's status of an interrupted command
        return interrupts.EXIT_CODE


@cli.entry_point(user_errors=(FloatingPointError,))  # a run that diverged: one line, as a bad config
def run(argv=None) -> int:
    cli.run_absl(main, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(run())
