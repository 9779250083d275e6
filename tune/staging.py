"""Where a trial stages each checkpoint before Ray copies it to storage, and the clean-up
of what killed trials left there.

A staging directory is ``<temp dir>/nerkit-ckpt-<host and PID namespace>-<pid>-<random>``:
it names the process that made it, so another trial on the node can tell when that
process is gone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

STAGING_PREFIX = "nerkit-ckpt-"


def remove_stale_staging(root: str | None = None) -> list[str]:
    """Remove the checkpoint staging directories of trial processes that have ended;
    returns them.

    Each checkpoint is written to a temporary directory before Ray copies it to storage;
    a killed driver (SIGKILL, ``ray job stop``, a preempted head) kills its trials
    without the clean-up, and each left one checkpoint (about 170 MiB for MiniLM) in the
    node's temporary directory. A directory names the process that made it, and the host
    and PID namespace that process id belongs to: containers sharing one /tmp number
    their processes each their own way, so only this namespace's directories are judged.
    """
    gone = []
    own = f"{STAGING_PREFIX}{_process_space()}-"
    for path in Path(root or tempfile.gettempdir()).glob(f"{own}*-*"):
        pid = path.name[len(own):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(str(path))
    return gone


def staging_prefix() -> str:
    """The name prefix of this process's checkpoint staging directories."""
    return f"{STAGING_PREFIX}{_process_space()}-{os.getpid()}-"


def _process_space() -> str:
    """This host and PID namespace, as a short key (process ids mean something only there)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha1(f"{socket.gethostname()}:{namespace}".encode()).hexdigest()[:10]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
