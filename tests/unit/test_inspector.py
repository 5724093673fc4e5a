"""One slow inspect (dockerd tearing down a container with many ports holds its lock for a
minute) must not hold up the others (issue 11, case 4)."""

from __future__ import annotations

import threading

from harness import wait_until

from registrator.inspector import Inspector


class SlowDocker:
    def __init__(self, slow: str) -> None:
        self.slow = slow
        self.release = threading.Event()
        self.calls: list[str] = []

    def running_ids(self):
        return []

    def inspect(self, cid):
        self.calls.append(cid)
        if cid == self.slow:
            self.release.wait(10)
        return {"Id": cid, "calls": self.calls.count(cid)}


def test_slow_inspect_is_deferred_and_handed_back_when_it_lands():
    docker = SlowDocker("slow")
    later: list[str] = []
    inspector = Inspector(docker, later=later.append, patience=0.1)
    try:
        results, deferred = inspector.inspect(["fast1", "slow", "fast2"])
        assert set(results) == {"fast1", "fast2"}
        assert deferred == {"slow"}
        # Asked again while still slow: not inspected a second time.
        results, deferred = inspector.inspect(["slow", "fast3"])
        assert set(results) == {"fast3"}
        assert deferred == {"slow"}
        assert docker.calls.count("slow") == 1
        docker.release.set()
        wait_until(lambda: later == ["slow"], timeout=5, message="handed back")
        # The late answer is used as it is: a dockerd slow for everyone still converges.
        results, deferred = inspector.inspect(["slow"])
        assert results["slow"]["calls"] == 1
        assert not deferred
    finally:
        inspector.close()


def test_a_late_answer_that_predates_an_event_is_not_used():
    docker = SlowDocker("slow")
    later: list[str] = []
    inspector = Inspector(docker, later=later.append, patience=0.05)
    try:
        inspector.inspect(["slow"])
        inspector.hinted("slow")  # e.g. `die` while the inspect was on its way
        docker.release.set()
        wait_until(lambda: later == ["slow"], timeout=5, message="handed back")
        results, _ = inspector.inspect(["slow"])
        assert results["slow"]["calls"] == 2  # inspected afresh
    finally:
        inspector.close()
