"""`config exec`'s command line (issue 21): the program's own options stay the program's,
`--watch --signal` with a stopping signal is refused, and a store that cannot be reached at
start is retried for `--retry-for`, then one line and exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from config_support import clean_env, exec_cmd


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
