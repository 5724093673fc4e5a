"""`config exec`'s command line (issue 21): the program's own options stay the program's,
`--watch --signal` with a stopping signal is refused, and a store that cannot be reached at
start is retried for `--retry-for`, then one line and exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from config_support import clean_env, exec_cmd
from harness import Proxy, free_port, terminate, wait_until


def registrator(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "registrator", *args], env=clean_env(),
                          capture_output=True, timeout=timeout, check=False)


def test_options_after_the_program_are_the_program_s(config, etcd, prefix, tmp_path: Path):
    config("set", "shop", "db.url", "postgres://default")
    config("set", "shop", "db.url", "postgres://h7", "--host", "h7")
    out = tmp_path / "out"
    script = f'printf "%s|" "$DB_URL" "$@" > {out}'
    # No `--`: exec's options end where the program's name begins.
    done = registrator("config", "exec", "shop", "--etcd-endpoints", etcd.endpoint,
                       "--prefix", prefix, "--host", "h1", "sh", "-c", script, "sh",
                       "--host", "h7", "--watch", "--prefix", "x")
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "postgres://default|--host|h7|--watch|--prefix|x|"
    # Options of exec's that take a value, given before the program, are still exec's.
    done = registrator("config", "exec", "--host=h7", "shop", "--prefix", prefix,
                       "--etcd-endpoints", etcd.endpoint, "sh", "-c", script, "sh", "-v")
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "postgres://h7|-v|"


@pytest.mark.parametrize("sig", ["TERM", "INT", "QUIT", "KILL", "SIGKILL", "15", "9"])
def test_watch_refuses_a_signal_that_stops_the_program(etcd, prefix, sig):
    done = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop", "--watch", "--signal", sig,
                                   program=["true"]),
                          env=clean_env(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "--signal" in lines[0]
    assert "restart" in lines[0]


def test_an_unreachable_store_at_start_is_retried_for_retry_for(config, etcd, prefix,
                                                                 tmp_path: Path):
    config("set", "shop", "db.url", "postgres://db")
    out = tmp_path / "out"
    proxy = Proxy(("127.0.0.1", etcd.port))
    proxy.cut()
    err = tmp_path / "exec.err"
    try:
        with err.open("wb") as stderr:
            proc = subprocess.Popen(
                exec_cmd(f"http://127.0.0.1:{proxy.port}", prefix, "shop", "--retry-for",
                         "60s", "--etcd-timeout", "1s",
                         program=["sh", "-c", f'echo "$DB_URL" > {out}']),
                env=clean_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_until(lambda: "retrying" in err.read_text(), timeout=30,
                       message="exec to say it retries")
            assert proc.poll() is None
            proxy.restore()
            assert proc.wait(timeout=60) == 0, err.read_text()
            assert out.read_text() == "postgres://db\n"
        finally:
            terminate(proc)
    finally:
        proxy.cut()


def test_retry_for_ends_with_one_line_and_exit_1(prefix, tmp_path: Path):
    done = subprocess.run(exec_cmd(f"http://127.0.0.1:{free_port()}", prefix, "shop",
                                   "--retry-for", "2s", "--etcd-timeout", "500ms",
                                   program=["true"]),
                          env=clean_env(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 1
    errors = [line for line in done.stderr.decode().splitlines()
              if line.startswith("registrator: error:")]
    assert len(errors) == 1, done.stderr
    assert "etcd unreachable" in errors[0]
    assert "2s" in errors[0]
