"""Pure logic of `config exec` (issue 21): which variables exec keeps to itself, which names
the store may not set, where the program's own arguments begin."""

from __future__ import annotations

import pytest

from registrator.cli_config import exec_
from registrator.configvalues.environment import dangerous, program_base_env, skip_reason


def test_exec_s_own_settings_stay_with_exec_unless_passed():
    environ = {"REGISTRATOR_ETCD_PASSWORD": "pw", "REGISTRATOR_PREFIX": "/p", "HOME": "/h",
               "PATH": "/bin"}
    assert program_base_env(environ, ()) == {"HOME": "/h", "PATH": "/bin"}
    assert program_base_env(environ, ("REGISTRATOR_PREFIX",)) == {
        "HOME": "/h", "PATH": "/bin", "REGISTRATOR_PREFIX": "/p"}


@pytest.mark.parametrize("name", ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "HOME",
                                  "PYTHONPATH", "PYTHONSTARTUP", "NODE_OPTIONS", "BASH_ENV",
                                  "DYLD_INSERT_LIBRARIES", "GLIBC_TUNABLES", "ld_audit"])
def test_dangerous_names(name):
    assert dangerous(name)
    assert skip_reason(name, ()) is not None
    assert skip_reason(name, (name,)) is None


@pytest.mark.parametrize("name", ["DB_URL", "SHOP_PATH", "PATHS_FILE", "HOMEPAGE", "_X"])
def test_ordinary_names(name):
    assert skip_reason(name, ()) is None


@pytest.mark.parametrize("name", ["1ABC", "0_X", "A-B", "", "A B"])
def test_invalid_names(name):
    assert "not a valid" in (skip_reason(name, (name,)) or "")


@pytest.mark.parametrize(("args", "expected"), [
    (["shop", "printenv", "X", "--host", "h7"], ["shop", "--", "printenv", "X", "--host", "h7"]),
    (["--host", "h7", "shop", "env"], ["--host", "h7", "shop", "--", "env"]),
    (["--host=h7", "shop", "--watch", "env", "-i"],
     ["--host=h7", "shop", "--watch", "--", "env", "-i"]),
    (["shop", "--", "env", "--watch"], ["shop", "--", "env", "--watch"]),
    (["shop", "--signal", "HUP", "--watch", "app"],
     ["shop", "--signal", "HUP", "--watch", "--", "app"]),
    (["shop"], ["shop"]),
])
def test_option_parsing_stops_at_the_program(args, expected):
    assert exec_.split_program(args) == expected  # type: ignore[attr-defined]
