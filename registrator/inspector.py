"""Container inspects with patience. dockerd holds a container's lock while it tears it down,
and tearing down hundreds of published ports takes it a minute or more: an inspect of that
container waits as long. One such container must not hold up every other one, so an inspect
that is not back within `patience` is left to finish in the background, its container is
handed back through `later`, and the rest of the batch goes on."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

Info = dict[str, Any] | None  # None: no such container
_WORKERS = 8  # inspects are I/O-bound round trips: a few in flight make a cold start faster
_PATIENCE = 2.0


class ContainerSource(Protocol):
    def running_ids(self) -> list[str]: ...
    def inspect(self, container_id: str) -> Info: ...


class Inspector:
    def __init__(self, docker: ContainerSource, later: Callable[[str], None],
                 patience: float = _PATIENCE, workers: int = _WORKERS) -> None:
        self.docker = docker
        self.later = later
        self.patience = patience
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="inspect")
        self._lock = threading.Lock()
        self._slow: dict[str, Future[Info]] = {}  # still running after `patience`
        self._asked_again: set[str] = set()  # an event came meanwhile: the answer is stale
        self._ready: dict[str, Info] = {}  # late answers not yet taken

    def running_ids(self) -> list[str]:
        return self.docker.running_ids()

    def inspect(self, ids: Iterable[str]) -> tuple[dict[str, Info], set[str]]:
        """Inspect data of each container answered within `patience`, and the ids left to
        finish in the background (each comes back through `later`). Raises what an inspect
        raised (Docker unreachable): the caller retries the whole batch."""
        results: dict[str, Info] = {}
        deferred: set[str] = set()
        futures: dict[str, Future[Info]] = {}
        with self._lock:
            for cid in dict.fromkeys(ids):
                if cid in self._slow:
                    deferred.add(cid)
                elif cid in self._ready:
                    results[cid] = self._ready.pop(cid)
                else:
                    futures[cid] = self._pool.submit(self.docker.inspect, cid)
        if not futures:
            return results, deferred
        wait(futures.values(), timeout=self.patience)
        for cid, future in futures.items():
            if future.done():
                results[cid] = future.result()  # raises the inspect's own error
                continue
            with self._lock:
                self._slow[cid] = future
            deferred.add(cid)
            future.add_done_callback(functools.partial(self._landed, cid))
        return results, deferred

    def hinted(self, cid: str) -> None:
        """Something happened to the container: an answer that is still on its way, or
        waiting to be taken, may predate it."""
        with self._lock:
            if cid in self._slow:
                self._asked_again.add(cid)
            self._ready.pop(cid, None)

    def _landed(self, cid: str, future: Future[Info]) -> None:
        with self._lock:
            self._slow.pop(cid, None)
            stale = cid in self._asked_again
            self._asked_again.discard(cid)
            if not stale and future.exception() is None:
                # Kept for the next look, so a uniformly slow dockerd still converges.
                self._ready[cid] = future.result()
        self.later(cid)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
