"""Scenario 7: churn soak with the invariant sampled throughout. REGISTRATOR_SOAK_OPS sets
the number of start/stop operations (default 300; 1000 for a long run)."""

from __future__ import annotations

import os
import time

import pytest
from fault_support import Churn, actual, expected, time_to_converge


@pytest.mark.slow
def test_churn_soak_no_lost_or_stale_entries(start_daemon, containers, docker_client):
    ops = int(os.environ.get("REGISTRATOR_SOAK_OPS", "300"))
    daemon = start_daemon()
    churn = Churn(containers, ops=ops, live=5).start()
    started = time.monotonic()
    diverged_since: float | None = None
    longest = 0.0
    samples = 0
    try:
        while churn.done < ops and time.monotonic() - started < 900:
            # The most recent containers: with at most 5 alive, older ones are long gone
            # (the final check below covers every container).
            recent = list(containers.ids[-15:])
            got, dupes = actual(daemon, recent)
            ok = dupes == 0 and got == expected(docker_client, recent)
            now = time.monotonic()
            if not ok and diverged_since is None:
                diverged_since = now
            elif ok and diverged_since is not None:
                longest = max(longest, now - diverged_since)
                diverged_since = None
            samples += 1
            time.sleep(0.02)  # sampling pace of the checker, not a wait for a condition
        churn.wait(120)
    finally:
        churn.stop()
    took = time.monotonic() - started
    final = time_to_converge(daemon, docker_client, containers.ids, 10, "after the soak")
    print(f"[soak] {churn.done} operations in {took:.0f} s ({churn.done / took:.1f}/s), "  # noqa: T201
          f"{samples} checks, longest divergence {longest * 1000:.0f} ms, "
          f"final convergence {final * 1000:.0f} ms")
    assert churn.done == ops
