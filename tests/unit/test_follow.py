"""The follower's loop with a scripted store: resume revisions, backoff on outages, the
re-read after an outage or a compaction and its difference, and a silent watch made again."""

from __future__ import annotations

import threading

import structlog

from registrator.consumers.follow import Follower
from registrator.errors import CompactedError, StoreUnavailableError
from registrator.keys import KeySpace
from registrator.stores.base import Change, KeyValue

KEYS = KeySpace("/r")


class Stream:
    def __init__(self, script):
        self.script = list(script)
        self.closed = False

    def next_batch(self, timeout=None):
        if self.closed:
            return None
        if not self.script:
            threading.Event().wait(min(timeout or 0.01, 0.01))
            return None
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        self.closed = True


class ScriptedStore:
    """snapshot() answers from `reads`; watch() hands out `streams` (or raises)."""

    def __init__(self, reads, streams):
        self.reads, self.streams = list(reads), list(streams)
        self.watched_from: list[int] = []

    def snapshot(self, prefix):
        return self.reads.pop(0)

    def watch(self, prefix, start_revision):
        self.watched_from.append(start_revision)
        item = self.streams.pop(0) if self.streams else Stream([])
        if isinstance(item, Exception):
            raise item
        return item


def kv(key, value):
    return KeyValue(key, value.encode(), 0)


def run_until(follower, condition):
    seen = []

    def notify(changes, first):
        seen.append((first, [(c.op, c.key.rsplit("/", 1)[1]) for c in changes]))
        if condition(seen):
            follower.stop()

    thread = threading.Thread(target=follower.run, args=(notify,))
    thread.start()
    thread.join(10)
    follower.stop()
    thread.join(5)
    assert not thread.is_alive()
    return seen


def test_rereads_after_outage_and_after_compaction():
    store = ScriptedStore(
        reads=[([kv("/r/a", "1"), kv("/r/b", "1")], 10), ([kv("/r/a", "1"), kv("/r/b", "1"),
                                                          kv("/r/x", "1")], 12),
               ([kv("/r/a", "2"), kv("/r/c", "1")], 20)],
        streams=[Stream([[Change("put", "/r/x", b"1", 11)], StoreUnavailableError("down")]),
                 Stream([CompactedError("gone")])])
    follower = Follower(store, KEYS, backoff_min=0.01, backoff_max=0.02)
    seen = run_until(follower, lambda s: len(s) == 3)
    assert seen[0] == (True, [("put", "a"), ("put", "b")])
    assert seen[1] == (False, [("put", "x")])
    # After the outage: read again, nothing new (x came by the watch), so nothing reported.
    # After the compaction: the difference against what was known.
    assert seen[2] == (False, [("put", "a"), ("put", "c"), ("delete", "b"), ("delete", "x")])
    assert store.watched_from[:3] == [11, 13, 21]


def test_a_store_back_empty_after_an_outage_is_seen_as_empty():
    # A store whose data was wiped comes back at a LOWER revision: resuming the watch from
    # ours would wait for a revision it may never reach, serving the old copy as current.
    store = ScriptedStore(reads=[([kv("/r/a", "1")], 500), ([], 2)],
                          streams=[Stream([StoreUnavailableError("down")])])
    follower = Follower(store, KEYS, backoff_min=0.01, backoff_max=0.02)
    seen = run_until(follower, lambda s: len(s) == 2)
    assert seen[1] == (False, [("delete", "a")])
    assert store.watched_from[:2] == [501, 3]


def test_a_silent_watch_is_made_again():
    store = ScriptedStore(reads=[([], 5)], streams=[Stream([]), Stream([[]]),
                                                    Stream([[Change("put", "/r/y", b"1", 6)]])])
    follower = Follower(store, KEYS, silent_watch=0.05)
    seen = run_until(follower, lambda s: len(s) == 2)
    assert seen[1] == (False, [("put", "y")])
    assert len(store.watched_from) >= 3


def test_an_open_watch_ends_the_outage_and_a_later_break_is_a_new_one():
    """A watch opened after an outage at start resets the backoff (a later failover must not
    wait out the grown delay) and says so; the next break is warned about again."""
    down = [StoreUnavailableError("down") for _ in range(4)]
    # Every break is followed by a read of the prefix (a store may come back empty).
    store = ScriptedStore(
        reads=[([], 5)] * 5 + [([kv("/r/x", "1")], 6)],
        streams=[*down, Stream([[Change("put", "/r/x", b"1", 6)], StoreUnavailableError("b")]),
                 Stream([[Change("put", "/r/y", b"1", 7)]])])
    follower = Follower(store, KEYS, backoff_min=0.01, backoff_max=0.05)
    with structlog.testing.capture_logs() as logs:
        seen = run_until(follower, lambda s: len(s) == 3)
    assert seen[2] == (False, [("put", "y")])
    events = [e["event"] for e in logs if e["event"].startswith("store")]
    assert events == ["store unreachable; retrying with backoff",
                      "store answers again; reading the registry again",
                      "store unreachable; retrying with backoff",
                      "store answers again; reading the registry again"]
    assert follower.problem is None
