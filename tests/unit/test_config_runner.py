"""`config exec`'s runner without a store: restart on a change, debounce, signal mode, exit
codes, and the parsing of its flags. The children are real (sh)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from registrator.cli_config import _signal_number
from registrator.configvalues.runner import Runner, WatchPolicy, exit_code
from registrator.configvalues.values import watch_policy
from registrator.errors import ConfigError, RegistratorError


class Values:
    """load(): X is the number of the call up to `changing_until`, then stays there."""

    def __init__(self, changing_until: int) -> None:
        self.calls = 0
        self.changing_until = changing_until

    def __call__(self) -> dict[str, str]:
        self.calls += 1
        return {"X": str(min(self.calls, self.changing_until))}


def recorder(path: Path, exit_when: str, code: int) -> list[str]:
    """A child that appends $X to `path`, then exits with `code` when X is `exit_when`, or
    waits (for a SIGTERM from the runner)."""
    return ["sh", "-c", (f'echo "$X" >> {path}; [ "$X" = {exit_when} ] && exit {code}; '
            "while :; do sleep 0.05; done")]


FAST = WatchPolicy(interval=0.05, quiet=0.3, longest=5.0, grace=5.0)


def test_a_burst_of_changes_is_one_restart(tmp_path):
    seen = tmp_path / "seen"
    load = Values(changing_until=6)  # changes at every read for 0.25 s, then quiet
    code = Runner(recorder(seen, "6", 4), {"PATH": "/usr/bin:/bin"}, load, FAST).run()
    assert code == 4
    assert seen.read_text().split() == ["1", "6"]


def test_longest_wait_bounds_the_debounce(tmp_path):
    seen = tmp_path / "seen"
    load = Values(changing_until=10_000)  # never quiet
    policy = WatchPolicy(interval=0.05, quiet=10.0, longest=0.5, grace=5.0)
    code = Runner(["sh", "-c", (f'echo "$X" >> {seen}; [ "$X" = 1 ] || exit 5; '
                   "while :; do sleep 0.05; done")], {}, load, policy).run()
    assert code == 5
    assert seen.read_text().split()[0] == "1"
    assert int(seen.read_text().split()[1]) > 1


def test_signal_mode_signals_instead_of_restarting(tmp_path):
    seen = tmp_path / "seen"
    load = Values(changing_until=2)
    policy = WatchPolicy(interval=0.05, quiet=0.1, longest=1.0, signal=signal.SIGUSR1)
    program = ["sh", "-c", (f'echo "$X" >> {seen}; trap "exit 9" USR1; '
               "while :; do sleep 0.05; done")]
    assert Runner(program, {}, load, policy).run() == 9
    assert seen.read_text().split() == ["1"]  # never restarted


def test_without_watch_the_store_is_read_once(tmp_path):
    load = Values(changing_until=5)
    assert Runner(["sh", "-c", "exit 3"], {}, load).run() == 3
    assert load.calls == 1


def test_a_failing_read_keeps_the_program(tmp_path):
    seen = tmp_path / "seen"
    calls = []

    def load():
        calls.append(1)
        if 1 < len(calls) < 5:
            raise RegistratorError("store down")
        return {"X": "1" if len(calls) == 1 else "2"}

    code = Runner(recorder(seen, "2", 6), {}, load, FAST).run()
    assert code == 6
    assert seen.read_text().split() == ["1", "2"]


def test_environment_is_base_plus_values_with_values_winning(tmp_path):
    out = tmp_path / "env"
    program = ["sh", "-c", f'echo "$X $KEEP" > {out}']
    assert Runner(program, {"X": "mine", "KEEP": "kept"}, lambda: {"X": "store"}).run() == 0
    assert out.read_text().split() == ["store", "kept"]


def test_exit_codes():
    assert exit_code(0) == 0
    assert exit_code(3) == 3
    assert exit_code(-signal.SIGTERM) == 143
    assert exit_code(-signal.SIGKILL) == 137


@pytest.mark.parametrize(("name", "number"), [("HUP", 1), ("sighup", 1), ("SIGUSR1", 10),
                                              ("usr2", 12), ("15", 15), (None, None)])
def test_signal_names(name, number):
    assert _signal_number(name) == number


@pytest.mark.parametrize("name", ["NOPE", "SIG", "999", ""])
def test_bad_signal_names(name):
    with pytest.raises(ConfigError, match=r"^--signal "):
        _signal_number(name)


def test_watch_policy_parsing():
    policy = watch_policy("200ms", "500ms:5s", "10s", signal.SIGHUP)
    assert (policy.interval, policy.quiet, policy.longest, policy.grace, policy.signal) == (
        0.2, 0.5, 5.0, 10.0, signal.SIGHUP)
    assert watch_policy("1s", "2s", "1s", None).longest == 5.0
    assert watch_policy("1s", "8s", "1s", None).longest == 8.0
    for interval, wait in (("0", "1s"), ("1s", "5s:1s"), ("x", "1s"), ("1s", "a:b")):
        with pytest.raises(ConfigError):
            watch_policy(interval, wait, "1s", None)


def test_a_program_that_ignores_sigterm_is_killed_after_the_grace_time(tmp_path):
    seen = tmp_path / "seen"

    def load() -> dict[str, str]:
        # The change comes once the first program runs with its trap set: a SIGTERM before
        # that would stop it without testing the escalation.
        return {"X": "2" if seen.exists() else "1"}

    policy = WatchPolicy(interval=0.05, quiet=0.1, longest=1.0, grace=0.3)
    program = ["sh", "-c", (f'trap "" TERM; echo "$X" >> {seen}; [ "$X" = 2 ] && exit 4; '
                            "while :; do sleep 0.05; done")]
    assert Runner(program, {}, load, policy).run() == 4
    assert seen.read_text().split() == ["1", "2"]
