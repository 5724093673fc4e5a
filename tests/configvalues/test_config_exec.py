"""`registrator config exec` with real child processes (SPEC §9, envconsul's role): values
as environment variables, the program's own defaults kept where the store has nothing,
`--watch` restarting (or signalling) the program on a change, signals passed on, exit code
propagated."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from config_support import clean_env, exec_cmd
from harness import Proxy, terminate, wait_until

# A program that records its environment and every signal it gets, one JSON line each, in
# the file named by argv[1]; it exits 0 on SIGTERM, after recording it.
PROGRAM = textwrap.dedent("""
    import json, os, signal, sys, time
    out = open(sys.argv[1], "a", buffering=1)
    def record(**kw):
        out.write(json.dumps({"pid": os.getpid(), **kw}) + "\\n")
    def on_signal(sig, _):
        record(signal=signal.Signals(sig).name)
        if sig == signal.SIGTERM:
            sys.exit(int(os.environ.get("EXIT_ON_TERM", "0")))
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, on_signal)
    record(env={k: v for k, v in os.environ.items() if k.startswith(("DB_", "POOL", "APP_",
                                                                     "TLS_", "SHOP_"))})
    while True:
        time.sleep(0.05)
""")


@pytest.fixture
def program(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    log = tmp_path / "program.log"
    log.touch()
    yield [sys.executable, str(script), str(log)], log
    # The program has a process group of its own: if a failed test had to kill exec, the
    # program would outlive it. Every pid it recorded is stopped here, by pid.
    for pid in {r["pid"] for r in records(log)}:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def env_dumper(path: Path, exit_code: int = 0) -> list[str]:
    """A program that writes its environment to `path` as JSON and exits with `exit_code`."""
    source = (f"import json, os, sys; json.dump(dict(os.environ), open({str(path)!r}, 'w')); "
              f"sys.exit({exit_code})")
    return [sys.executable, "-c", source]


def records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def starts(log: Path) -> list[dict]:
    return [r for r in records(log) if "env" in r]


class Exec:
    def __init__(self, etcd, prefix: str, app: str, *options: str, program: list[str],
                 env: dict[str, str] | None = None, endpoint: str | None = None,
                 stderr: Path | None = None) -> None:
        self._err = stderr.open("wb") if stderr is not None else None
        self.proc = subprocess.Popen(exec_cmd(endpoint or etcd.endpoint, prefix, app, *options,
                                              program=program),
                                     env=clean_env(**(env or {})), stdout=subprocess.PIPE,
                                     stderr=self._err or subprocess.PIPE)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        terminate(self.proc)  # SIGTERM first: exec passes it on and waits for the program
        for stream in (self.proc.stdout, self.proc.stderr, self._err):
            if stream is not None:
                stream.close()


@pytest.fixture
def execs():
    started: list[Exec] = []

    def start(*args, **kwargs) -> Exec:
        started.append(Exec(*args, **kwargs))
        return started[-1]

    yield start
    for e in started:
        e.stop()


def test_values_become_environment_variables(config, etcd, prefix, tmp_path):
    config("set", "shop", "db.url", "postgres://db")
    config("set", "shop", "db.url", "postgres://replica", "--host", "host7")
    config("set", "shop", "pool-size", "5")
    config("set", "shop", "tls/ca-file", "/etc/ca.pem")
    config("set", "shop", "app.yaml", "-", stdin=b"a: 1\nb: 2\n")
    dump = tmp_path / "env.json"
    code = env_dumper(dump, exit_code=7)
    done = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop", "--host", "host7",
                                   program=code),
                          env=clean_env(DB_URL="program-default", POOL_SIZE="1",
                                        UNRELATED="kept"),
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 7, done.stderr
    env = json.loads(dump.read_text())
    # The store wins where it has a value; the program's own defaults stay elsewhere.
    assert env["DB_URL"] == "postgres://replica"
    assert env["POOL_SIZE"] == "5"
    assert env["TLS_CA_FILE"] == "/etc/ca.pem"
    assert env["APP_YAML"] == "a: 1\nb: 2\n"
    assert env["UNRELATED"] == "kept"


def test_defaults_stay_where_the_store_has_nothing_and_prefix_env(config, etcd, prefix,
                                                                   tmp_path):
    config("set", "shop", "db.url", "postgres://db")
    dump = tmp_path / "env.json"
    code = env_dumper(dump)
    done = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop", "--prefix-env", "SHOP_",
                                   program=code),
                          env=clean_env(SHOP_POOL="3", DB_URL="untouched"),
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    env = json.loads(dump.read_text())
    assert (env["SHOP_DB_URL"], env["SHOP_POOL"], env["DB_URL"]) == (
        "postgres://db", "3", "untouched")


def test_encrypted_values_are_decrypted_or_refused(config, etcd, prefix, keys, tmp_path):
    alice, _ = keys
    config("set", "shop", "db.password", "hunter2-s3cret", "--encrypt", "--keyring",
           alice.public, "--allow-argv")
    dump = tmp_path / "env.json"
    code = env_dumper(dump)
    refused = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop", program=code),
                             env=clean_env(), capture_output=True, timeout=60, check=False)
    assert refused.returncode == 1
    assert "is encrypted" in refused.stderr.decode()
    assert len(refused.stderr.decode().strip().splitlines()) == 1
    assert not dump.exists()  # the program never ran with ciphertext in its environment
    done = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop", "--secret-keyring",
                                   alice.secret, program=code),
                          env=clean_env(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(dump.read_text())["DB_PASSWORD"] == "hunter2-s3cret"  # noqa: S105
    assert b"hunter2" not in done.stderr


def test_exit_code_and_missing_program(etcd, prefix):
    failing = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop",
                                      program=["sh", "-c", "exit 42"]),
                             env=clean_env(), capture_output=True, timeout=60, check=False)
    assert failing.returncode == 42
    missing = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop",
                                      program=["/nonexistent/program"]),
                             env=clean_env(), capture_output=True, timeout=60, check=False)
    assert missing.returncode == 127
    assert b"command not found" in missing.stderr


def test_bad_names_and_flags_exit_2(etcd, prefix):
    for options in (["--prefix-env", "1BAD"], ["--signal", "NOPE", "--watch"],
                    ["--signal", "HUP"], ["--host", "a/b"]):
        done = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop", *options,
                                       program=["true"]),
                              env=clean_env(), capture_output=True, timeout=60, check=False)
        assert done.returncode == 2, (options, done.stderr)
    bad_app = subprocess.run(exec_cmd(etcd.endpoint, prefix, "..", program=["true"]),
                             env=clean_env(), capture_output=True, timeout=60, check=False)
    assert bad_app.returncode == 2


@pytest.mark.parametrize(("exit_on_term", "expected"), [("0", 0), ("3", 3)])
def test_sigterm_reaches_the_program_and_its_code_is_exec_s(
        etcd, prefix, program, execs, exit_on_term, expected):
    argv, log = program
    running = execs(etcd, prefix, "shop", program=argv, env={"EXIT_ON_TERM": exit_on_term})
    wait_until(lambda: starts(log), timeout=20, message="the program to start")
    running.proc.send_signal(signal.SIGTERM)
    assert running.wait() == expected
    assert {"signal": "SIGTERM"}.items() <= records(log)[-1].items()


def test_other_signals_are_passed_on(etcd, prefix, program, execs):
    argv, log = program
    running = execs(etcd, prefix, "shop", program=argv)
    wait_until(lambda: starts(log), timeout=20, message="the program to start")
    running.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: any(r.get("signal") == "SIGUSR1" for r in records(log)), timeout=10,
               message="SIGUSR1 to reach the program")
    assert running.proc.poll() is None
    running.proc.send_signal(signal.SIGTERM)
    assert running.wait() == 0


def test_watch_restarts_the_program_on_a_change(config, etcd, prefix, program, execs):
    argv, log = program
    config("set", "shop", "db.url", "postgres://one")
    running = execs(etcd, prefix, "shop", "--watch", "--interval", "200ms", "--wait",
                    "300ms:2s", program=argv)
    first = wait_until(lambda: starts(log), timeout=20, message="the program to start")[0]
    assert first["env"]["DB_URL"] == "postgres://one"
    # Two changes a few milliseconds apart: one restart (debounced) that has both.
    etcd.view.put(f"{prefix}/config/shop/defaults/db.url", "postgres://two")
    etcd.view.put(f"{prefix}/config/shop/defaults/pool", "7")
    second = wait_until(lambda: starts(log)[1:], timeout=20,
                        message="the program to be restarted")[0]
    assert second["pid"] != first["pid"]
    assert (second["env"]["DB_URL"], second["env"].get("POOL")) == ("postgres://two", "7")
    assert {"pid": first["pid"], "signal": "SIGTERM"} in records(log)
    # A key removed: the program's own default (none here) again.
    config("rm", "shop", "pool")
    third = wait_until(lambda: starts(log)[2:], timeout=20,
                       message="a restart after the removal")[0]
    assert "POOL" not in third["env"]
    assert third["env"]["DB_URL"] == "postgres://two"
    assert len(starts(log)) == 3
    running.proc.send_signal(signal.SIGTERM)
    assert running.wait() == 0


def test_watch_with_signal_sends_it_instead_of_restarting(config, etcd, prefix, program,
                                                          execs):
    argv, log = program
    config("set", "shop", "db.url", "postgres://one")
    running = execs(etcd, prefix, "shop", "--watch", "--signal", "HUP", "--interval",
                    "200ms", "--wait", "200ms:1s", program=argv)
    wait_until(lambda: starts(log), timeout=20, message="the program to start")
    config("set", "shop", "db.url", "postgres://two")
    wait_until(lambda: any(r.get("signal") == "SIGHUP" for r in records(log)), timeout=20,
               message="SIGHUP on a change")
    assert len(starts(log)) == 1
    assert running.proc.poll() is None
    running.proc.send_signal(signal.SIGTERM)
    assert running.wait() == 0


def test_watch_ends_when_the_program_ends(config, etcd, prefix, execs):
    running = execs(etcd, prefix, "shop", "--watch", program=["sh", "-c", "sleep 0.3; exit 5"])
    assert running.wait() == 5


def test_watch_survives_a_store_outage(config, etcd, prefix, program, execs, tmp_path):
    argv, log = program
    config("set", "shop", "db.url", "postgres://one")
    proxy = Proxy(("127.0.0.1", etcd.port))
    err = tmp_path / "exec.err"
    try:
        running = execs(etcd, prefix, "shop", "--watch", "--interval", "200ms", "--wait",
                        "200ms:1s", "--etcd-timeout", "1s", program=argv,
                        endpoint=f"http://127.0.0.1:{proxy.port}", stderr=err)
        wait_until(lambda: starts(log), timeout=20, message="the program to start")
        proxy.cut()
        wait_until(lambda: "cannot read configuration" in err.read_text(), timeout=20,
                   message="exec to notice the outage")
        assert running.proc.poll() is None
        assert len(starts(log)) == 1  # the program keeps running as it is
        etcd.view.put(f"{prefix}/config/shop/defaults/db.url", "postgres://two")
        proxy.restore()
        second = wait_until(lambda: starts(log)[1:], timeout=30,
                            message="a restart with the change made during the outage")[0]
        assert second["env"]["DB_URL"] == "postgres://two"
        assert err.read_text().count("cannot read configuration") == 1  # once per outage
        running.proc.send_signal(signal.SIGTERM)
        assert running.wait() == 0
    finally:
        proxy.cut()
