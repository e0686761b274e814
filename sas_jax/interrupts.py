"""Ctrl-C (SIGINT) of a training command: a save, not a crash (docs/run_promises.md).

- Before the loop's first step (start-up, restore, compilation): nothing new to save, so the
  process exits at once, status 130, with one line on stderr.
- In the loop: what SIGTERM does. The processes agree on a step (`Trainer.stop_requested`),
  it is finished and saved, one line says where, and the command exits with status 130.
- A second Ctrl-C: exits at once, status 130, one line, no traceback.

Python runs a signal handler only when the main thread is back in the interpreter, which an
XLA compilation (minutes on a large model) or a device wait is not. So the work is done by a
thread that reads the signal numbers the C-level handler writes to a wakeup fd
(`signal.set_wakeup_fd`) and acts at once; the Python-level handler does nothing. Exiting at
once is `os._exit(130)`: no KeyboardInterrupt unwinding through XLA's threads (a traceback,
then a segfault in the interpreter's teardown), no atexit. What it leaves behind is what a
SIGKILL leaves (an unfinished `<step>.orbax-checkpoint-tmp`, a torn last log line, the lock
the kernel releases), and the next run handles each.

Only the command line installs this (`sas_jax/main.py`): called as a library (notebooks,
tests), Ctrl-C stays Python's KeyboardInterrupt.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading

EXIT_CODE = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


class _Interrupts:
    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0  # Ctrl-Cs received
        self.stop: threading.Event | None = None  # the running loop's stop flag (a save is asked)
        self.ended = False  # the loop ended: its checkpoint is saved
        self.process = ""  # "process i/N: " in a multi-process run
        self.sockets: tuple = ()  # the wakeup fd's pair, open for the life of the process

    def on_sigint(self) -> None:
        with self.lock:
            self.count += 1
            if self.count == 1 and self.stop is not None:
                self.stop.set()
                _line(f"{self.process}Ctrl-C: finishing this step and saving it (Ctrl-C again to quit at once "
                      "without saving)", sys.stdout)
                return
            if self.ended:
                why = "Ctrl-C after the last step: quit (the run's checkpoint is saved)"
            elif self.count > 1:
                why = "Ctrl-C again: quit without saving; re-run the same command to resume from the newest checkpoint"
            else:
                why = ("Ctrl-C before the first training step: quit, nothing new to save; re-run the same command "
                       "to start (or resume)")
        _quit(f"{self.process}{why}")


_STATE: _Interrupts | None = None


def _line(message: str, stream) -> None:
    try:
        stream.write(message + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def _quit(message: str) -> None:
    """One line on stderr, then the process ends at once (no teardown)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        os.write(2, (message + "\n").encode())
    finally:
        os._exit(EXIT_CODE)


def _watch(sock: socket.socket) -> None:
    while True:
        try:
            data = sock.recv(64)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum == signal.SIGINT and _STATE is not None:
                _STATE.on_sigint()


def install() -> bool:
    """Makes Ctrl-C behave as the module says, for the rest of this process. From the main
    thread of a command line, as early as possible; returns False (and does nothing) elsewhere."""
    global _STATE
    if _STATE is not None:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    _STATE = _Interrupts()
    signal.signal(signal.SIGINT, lambda *_: None)  # the watcher acts; no KeyboardInterrupt
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    _STATE.sockets = (reader, writer)
    threading.Thread(target=_watch, args=(reader,), name="sas-ctrl-c", daemon=True).start()
    return True


def set_process(index: int, count: int) -> None:
    """Names the process in the lines of a multi-process run."""
    if _STATE is not None and count > 1:
        _STATE.process = f"process {index}/{count}: "


def loop_started(stop: threading.Event) -> None:
    """The first step is dispatched: from now on Ctrl-C sets `stop` (a save), a second one quits."""
    if _STATE is not None:
        with _STATE.lock:
            _STATE.stop = stop


def loop_ended() -> None:
    """The loop returned (its checkpoint is saved): Ctrl-C quits at once again."""
    if _STATE is not None:
        with _STATE.lock:
            _STATE.stop, _STATE.ended = None, True


def requested() -> bool:
    """Whether a Ctrl-C asked this process's loop for a save."""
    return _STATE is not None and _STATE.count > 0
