"""Multi-process start-up: JAX's own multi-controller runtime, nothing else.

One process per GPU (or per node) on every host; `jax.distributed.initialize`
connects them and XLA's collectives (NCCL on GPU, gloo on CPU) do the rest.
SLURM is auto-detected by JAX (SLURM_NTASKS etc.); elsewhere the coordinator
address, process count and id come from flags or the environment:

    SAS_COORDINATOR=host:port  SAS_NUM_PROCESSES=N  SAS_PROCESS_ID=i

A process that dies (killed, crashed, its host lost) leaves the others waiting in a collective
that never completes. Each process therefore runs a peer watch (`PeerWatch`): it bumps its own
counter in the coordination service's key-value store every second and reads the others'; a
peer whose counter has not moved for SAS_PEER_TIMEOUT seconds (default 60) and that has not said
it finished is lost, and the process stops at once with one line naming it (exit status 75:
re-run the same command, which resumes from the newest checkpoint). JAX's own heartbeat would
end the process too, but only after 100 s and with a C++ abort and a stack dump.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time

import jax

PEER_TIMEOUT = 60.0  # seconds without a peer's heartbeat before it counts as lost (SAS_PEER_TIMEOUT)
EXIT_PEER_LOST = 75  # EX_TEMPFAIL: a temporary failure; re-running the same command resumes
_KEY = "sas_jax/peer_watch"


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
    if jax.process_count() > 1:
        PeerWatch.start(float(os.environ.get("SAS_PEER_TIMEOUT") or PEER_TIMEOUT))


class PeerWatch:
    """The lost-peer check of a multi-process run (the module docstring). `finished()` tells the
    others this process ends normally (it then waits for them in JAX's shutdown barrier)."""

    _current: "PeerWatch | None" = None

    def __init__(self, client, index: int, count: int, timeout: float, period: float = 1.0):
        self.client, self.index, self.count = client, index, count
        self.timeout, self.period = timeout, period
        self._stop = threading.Event()
        self._beats = 0

    @classmethod
    def start(cls, timeout: float) -> "PeerWatch | None":
        from jax._src import distributed as jax_distributed  # noqa: PLC0415 (the client JAX connected)

        client = getattr(jax_distributed.global_state, "client", None)
        if client is None or timeout <= 0:
            return None
        watch = cls(client, jax.process_index(), jax.process_count(), timeout)
        watch._beat()
        threading.Thread(target=watch._run, name="sas-peer-watch", daemon=True).start()
        # atexit runs last-registered first: this stops before JAX's own shutdown barrier.
        atexit.register(watch.stop)
        cls._current = watch
        return watch

    def _beat(self) -> None:
        self._beats += 1
        self.client.key_value_set(f"{_KEY}/beat/{self.index}", str(self._beats), allow_overwrite=True)

    def _run(self) -> None:
        now = time.monotonic()
        seen = {i: (None, now) for i in range(self.count) if i != self.index}  # peer: (last value, when it moved)
        failing_since = None
        while not self._stop.wait(self.period):
            now = time.monotonic()
            try:
                self._beat()
                values = dict(self.client.key_value_dir_get(f"{_KEY}/"))
                failing_since = None
            except Exception as e:  # noqa: BLE001 (the coordination service is process 0's)
                failing_since = failing_since or now
                if now - failing_since >= min(self.timeout, 10.0) and not self._stop.is_set():
                    self._lost(0, f"the coordination service it runs does not answer ({str(e).splitlines()[0][:120]})")
                continue
            for peer, (last, moved) in seen.items():
                if f"{_KEY}/done/{peer}" in values:
                    continue  # finished normally: it waits for this one at the shutdown barrier
                value = values.get(f"{_KEY}/beat/{peer}")
                if value != last:
                    seen[peer] = (value, now)
                elif now - moved >= self.timeout and not self._stop.is_set():
                    self._lost(peer, f"no heartbeat for {self.timeout:.0f} s: killed, crashed, stopped on an error "
                                     "of its own, or its host is lost")

    def _lost(self, peer: int, why: str) -> None:
        """One line, then this process ends at once: its collectives would wait for the lost one forever."""
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.write(2, (f"error: process {self.index}/{self.count}: process {peer} of the run is gone ({why}); "
                     "stopping this one too; re-run the same command to resume from the newest checkpoint\n").encode())
        os._exit(EXIT_PEER_LOST)

    def finished(self) -> None:
        try:
            self.client.key_value_set(f"{_KEY}/done/{self.index}", "1", allow_overwrite=True)
        except Exception:  # noqa: BLE001 (best effort: the others may already be gone)
            pass
        self.stop()

    def stop(self) -> None:
        self._stop.set()


def await_lost_peer() -> None:
    """Before an unexpected error of a multi-process run is reported: a collective that failed
    because a peer is gone (Gloo raises at once) would otherwise print this process's traceback
    and then hang in JAX's shutdown barrier, waiting for the lost peer. This gives the peer watch
    its timeout to decide: if a peer is lost it ends the process with its one line; if every
    peer is alive it returns, and the error is reported as it is."""
    watch = PeerWatch._current
    if watch is None or watch._stop.is_set():
        return
    watch._stop.wait(watch.timeout + 3 * watch.period)


def finished() -> None:
    """This process ends normally (trained, or stopped and saved): its peers stop watching it."""
    if PeerWatch._current is not None:
        PeerWatch._current.finished()


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
