"""`registrator config` usage (issue 21 item 20): a bare group prints its help, not a
multi-line "error:"; the usage hints name commands that exist."""

from __future__ import annotations

import subprocess
import sys

import pytest


def registrator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registrator", *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("args", [["config"], []], ids=["config", "top"])
def test_a_bare_group_prints_its_help(args):
    done = registrator(*args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith(f"Usage: registrator {' '.join(args)}".rstrip() + " ")
    assert "Commands:" in done.stdout


@pytest.mark.parametrize("sub", ["exec", "get", "grant", "revoke", "set"])
def test_hints_name_the_config_command(sub):
    done = registrator("config", sub)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"(see: registrator config {sub} --help)" in lines[0]

