"""Whether a model must come from the Hugging Face hub, and whether the hub answers.

huggingface_hub retries a request that cannot connect five times with backoff (about 23 s
a file), so on a machine without network a hub name took about 50 s to fail, and a hub
model already in the local cache about as long at every load (every trial) before
transformers fell back to the cache. One request with a short timeout tells first
whether the hub answers; where it does not, loads read the cache only
(``local_files_only``), at once. ``HF_HUB_OFFLINE=1`` skips the request: the hub's own
offline mode is fast already.

Example:
    >>> from_hub("/models/mine") , from_hub("bert-base-cased")   # doctest: +SKIP
    (False, True)
"""

from __future__ import annotations

import functools
import os

#: Seconds the one request waits for the hub. A reachable hub answers in well under a
#: second; the request runs once per process.
PROBE_TIMEOUT_S = 5.0


def from_hub(name: str) -> bool:
    """``name`` would be fetched from the hub: not an existing local path."""
    return not os.path.exists(os.path.expanduser(name))


@functools.lru_cache(maxsize=1)
def hub_unreachable() -> str | None:
    """Why the hub cannot be reached (the error of one HEAD request to its endpoint), or
    None where it answers (any HTTP status) or offline mode is set (no request made)."""
    from huggingface_hub import constants, get_session

    if constants.HF_HUB_OFFLINE:
        return None
    try:
        # Any response, even an error status, means the network and the endpoint work
        # (a proxy from HTTPS_PROXY too: the hub's own client is used).
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - the client's transport errors (DNS, refused, timeout) have its own types
        return f"{constants.ENDPOINT} did not answer ({type(exc).__name__}: {exc})"
    return None


def load_options(name: str) -> dict[str, bool]:
    """Keyword arguments for ``from_pretrained(name, …)``: the local cache only when
    ``name`` is a hub name and the hub does not answer."""
    return {"local_files_only": True} if from_hub(name) and hub_unreachable() else {}


def unreachable_note(name: str) -> str | None:
    """Why a hub name did not load, where the reason is that the hub does not answer and
    the cache has no copy (a cached copy that fails to load fails for its own reason)."""
    why = hub_unreachable() if from_hub(name) else None
    if not why or _cached(name):
        return None
    return f"it is not in the local Hugging Face cache, and the hub {why}"


def _cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id ("a b", "../x"): nothing of it is cached
        return False
