"""Joining Ray for a search: a cluster's (``--address``, ``RAY_ADDRESS``) or one started
in this process, refusing what could never run (a Ray Client address, trials larger than
the machine) before anything slow starts."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

from tune.settings import SearchSettings


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while Ray starts, and deliver them once it is up.

    One that landed inside ``ray.init`` left Ray half started, and the process then died in
    Ray's exit-time shutdown (SIGSEGV, exit status 139) instead of ending as an interrupted
    search (130). A signal mask cannot hold them: native threads (jemalloc's, pyarrow's)
    take a signal the main thread blocks, and Python still raises it in the main thread.
    So the first is recorded, then sent again to the handlers in place at the end; a second
    one is delivered at once (a ``ray.init`` that hangs on an unreachable head must still
    be stoppable). Handlers Ray sets while it starts (its SIGTERM handlers) are what that
    end puts in place, as Ray's own ``DeferSigint`` does for SIGINT; ``signal.getsignal``
    answers with them too, so code that saves and restores a handler inside the block
    cannot keep the recorder. Outside the main thread nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    final = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    set_handler, get_handler = signal.signal, signal.getsignal

    def release() -> None:
        signal.signal, signal.getsignal = set_handler, get_handler
        for signum, handler in final.items():
            set_handler(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python

    def record(signum, frame) -> None:
        if received:  # the second: no more holding
            received.clear()
            release()
            signal.raise_signal(signum)
            return
        received.append(signum)

    def set_later(signum, handler):
        if signum in final and threading.current_thread() is threading.main_thread():
            before, final[signum] = final[signum], handler
            return before
        return set_handler(signum, handler)

    def get_later(signum):
        return final[signum] if signum in final else get_handler(signum)

    for signum in final:
        set_handler(signum, record)
    signal.signal, signal.getsignal = set_later, get_later
    try:
        yield
    finally:
        held = list(received)
        if signal.signal is set_later:  # not released by a second signal (handlers set since then stay)
            release()
        for signum in held:
            signal.raise_signal(signum)


def check_address(address: str | None) -> None:
    """Refuse an address nerkit cannot use, before anything slow (data preparation) runs."""
    import ray

    given = address or os.environ.get("RAY_ADDRESS")
    if given and given.startswith("ray://"):
        # Through Ray Client, Tune runs the whole search in a task on the head: the study
        # path, the progress view and nerkit's driver-side callbacks would be the head's,
        # none of it tested. A job on the head is the supported way in.
        raise ValueError(f"address is {given!r}: Ray Client (ray://) addresses are not supported; submit the "
                         "search as a job on the head (`ray job submit --address http://HEAD:8265 -- nerkit "
                         "search …`, docs/CLUSTER.md), or give the GCS address (HEAD:6379) from a machine "
                         "inside the cluster's network")
    if ray.is_initialized():
        _check_joined(address, ray.get_runtime_context().gcs_address)


def init_ray(address: str | None) -> None:
    """Join a cluster (``--address`` or ``RAY_ADDRESS``) or start Ray in-process."""
    import ray

    # Searches made before tune.retention ran Ray with num_to_keep=1, which forces a
    # snapshot per checkpoint; resuming one, Ray's warning about it would be noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's own console tables would fight the CLI's live view; with the classic
    # reporter, RunConfig(verbose=0) keeps Ray quiet.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    check_address(address)
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Trial stdout/stderr go to per-trial files, and Ray's INFO lines ("Started a local Ray
    # instance", "Wrote the latest version of all result files…") are not shown: both would
    # drown the driver's progress view. Ray's warnings still show.
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)


def _check_joined(address: str | None, joined: str) -> None:
    """Refuse a cluster address when this process already runs another Ray.

    Otherwise a caller that started a local Ray earlier (a notebook, another test)
    and then asks for ``address="head:6379"`` would silently run the whole search
    on the local machine. Addresses are compared by GCS port, which tells two
    clusters apart without resolving host names; ``auto`` and ``local`` are not checked
    (``ray://`` never gets here: init_ray refuses it).
    """
    if not address or address in ("auto", "local") or "://" in address:
        return
    if address.rpartition(":")[2] != joined.rpartition(":")[2]:
        raise ValueError(f"address is {address!r}, but this process already joined the Ray at {joined!r}; "
                         "call ray.shutdown() first, or pass address=None to use the Ray already joined")


def starts_local_ray(address: str | None) -> bool:
    """Whether init_ray(address) will start a new Ray in this process: no Ray running here,
    and neither an address nor a cluster already started on this machine (``ray start
    --head`` or ``ray up``'s head, which a plain ``ray.init()`` joins)."""
    import ray

    if ray.is_initialized():
        return False
    try:
        from ray._private.services import canonicalize_bootstrap_address

        # What ray.init itself does with the address: None means it starts a local Ray.
        return canonicalize_bootstrap_address(address or os.environ.get("RAY_ADDRESS")) is None
    except Exception:  # noqa: BLE001 - Ray's private helper moved or failed: assume a cluster, check nothing
        return False


#: Whether this process's Ray is a cluster it joined (init_ray_for): a ``ray exec`` on
#: the head joins the cluster running there with no address given at all.
_joined = [False]


def joined_cluster() -> bool:
    """Whether :func:`init_ray_for` joined a running cluster rather than starting Ray here."""
    return _joined[0]


def init_ray_for(settings: SearchSettings, address: str | None) -> None:
    """init_ray, then, on a Ray this process started, refuse trials larger than the machine:
    they would wait for ever, silently (no autoscaler adds a GPU to a laptop)."""
    import ray

    local = starts_local_ray(address)
    init_ray(address)
    _joined[0] = not local
    if not local:
        return
    total = ray.cluster_resources()
    for option, need, kind in (("--cpus-per-trial", settings.cpus_per_trial, "CPU"),
                               ("--gpus-per-trial", settings.gpus_per_trial, "GPU")):
        have = total.get(kind, 0)
        if need > have + 1e-9:
            ray.shutdown()  # started for this search only; a retry in this process checks again
            raise ValueError(f"{option} is {need:g}, but this machine has {have:g} {kind}(s) for Ray (no cluster "
                             f"here and no --address: Ray runs in this process), so no trial could ever start; "
                             f"give {option} of at most {have:g}, or --address of a cluster that has them")
