"""Logging never takes a thread down (issue 11, case 3): a dead pipe or no stderr at all."""

from __future__ import annotations

import io

import structlog

from registrator import logs


class DeadPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_dead_pipe_drops_lines_instead_of_raising():
    out = logs.configure("info", stream=DeadPipe(), json_output=True)
    try:
        structlog.get_logger("t").warning("still here", n=1)
        structlog.get_logger("t").info("and here")
    finally:
        logs.configure("info", stream=io.StringIO())
    assert out.dropped >= 2


def test_no_stderr_at_all_is_fine(monkeypatch):
    monkeypatch.setattr("sys.stderr", None)
    out = logs.configure("info")
    structlog.get_logger("t").error("nobody reads this")
    assert out.dropped >= 1
    logs.configure("info", stream=io.StringIO())


def test_tracebacks_carry_no_local_variables():
    buf = io.StringIO()
    logs.configure("info", stream=buf, json_output=True)
    secret = "hunter2"  # noqa: S105 - a stand-in for a secret in a local
    try:
        int("boom")
    except ValueError:
        structlog.get_logger("t").exception("failed")
    assert secret not in buf.getvalue()
    assert "boom" in buf.getvalue()
