"""One run per workdir: an exclusive lock held by process 0 while a run is open.

The lock is `fcntl.flock` on `<workdir>/run.lock`, whose text names the holder (pid, host,
start time). The kernel drops a flock when its process dies, however it dies (SIGKILL
included), so a lock left by a killed run is stale by construction: the next run takes it
over and says so. A second run on a workdir in use is refused at once, naming the holder.
On a filesystem without flock support the lock falls back to the pid in the file: a holder
on this host that is still alive refuses, anything else is taken over.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time

from sas_jax.errors import UserError

LOCK_FILE = "run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkdirLock:
    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_FILE)
        self._fd = None

    def acquire(self) -> str | None:
        """Takes the lock; returns a note when a stale lock was taken over; UserError if in use."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            os.close(fd)
            raise UserError(f"workdir {self.workdir} is in use by another run ({holder or 'holder unknown'}); "
                            "wait for it to finish or stop it, or use another --workdir") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            self._check_pid(self._read(fd), fd)  # no flock on this filesystem
        previous = self._read(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        if previous:
            return f"took over the lock of a run that is gone ({previous}) in {self.workdir}"
        return None

    def _check_pid(self, holder: str, fd: int) -> None:
        parts = holder.split()
        if len(parts) >= 5 and parts[0] == "pid" and parts[3] == socket.gethostname() and parts[1].isdigit():
            pid = int(parts[1])
            if pid != os.getpid() and _alive(pid):
                os.close(fd)
                raise UserError(f"workdir {self.workdir} is in use by another run ({holder}); wait for it to "
                                "finish or stop it, or use another --workdir")

    @staticmethod
    def _read(fd: int) -> str:
        return os.pread(fd, 4096, 0).decode(errors="replace").strip()

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # an empty lock file: the run ended normally
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
