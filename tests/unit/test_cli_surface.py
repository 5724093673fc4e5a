"""What an operator sees of the command line: environment variable names, --help, usage
hints. Every command and flag is walked, so a new flag that breaks a rule fails here."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from registrator.cli import cli, main

PREFIX = "REGISTRATOR"
# Mode switches of one-shot commands: an exported variable must never change what a
# command prints or whether it runs once, so they have no variable at all.
NO_VARIABLE = {
    ("ls", "as_json"), ("ls", "hosts"), ("ls", "host"),
    ("watch", "as_json"),
    ("render", "once"),
    ("config ls", "as_json"),
}
# --wait exists on two commands with different defaults: each gets its own variable.
COMMAND_SCOPED = {("render", "wait"): "REGISTRATOR_RENDER_WAIT",
                  ("config exec", "wait"): "REGISTRATOR_EXEC_WAIT",
                  # One name for this host in every command (issue 21), as `run` reads it.
                  **{(f"config {sub}", "host"): "REGISTRATOR_HOSTNAME"
                     for sub in ("get", "ls", "exec")}}
# One meaning everywhere (how much the command logs); each command's default is what it
# should print when nobody asks, and REGISTRATOR_LOG_LEVEL=debug is meant for all of them.
SAME_MEANING = {"REGISTRATOR_LOG_LEVEL"}
DURATION_FLAGS = {"ttl", "resync", "etcd_timeout", "cmd_timeout", "interval", "kill_timeout",
                  "retry_for", "dns_ttl", "stale_after"}


def commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    out: list[tuple[str, click.Command]] = []
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            sub_ctx = click.Context(command, parent=ctx, info_name=name)
            out += [(f"{name} {sub}", command.get_command(sub_ctx, sub))
                    for sub in command.list_commands(sub_ctx)]
        else:
            out.append((name, command))
    return out


def variables(command: click.Command, param: click.Option) -> list[str]:
    """The environment variables click reads for this option (its own rules, restated)."""
    if param.envvar:
        return [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
    prefix = (command.context_settings or {}).get("auto_envvar_prefix")
    if param.allow_from_autoenv and prefix and param.name:
        return [f"{prefix}_{param.name.upper()}"]
    return []


def options() -> list[tuple[str, click.Command, click.Option]]:
    return [(name, command, p) for name, command in commands() for p in command.params
            if isinstance(p, click.Option) and p.name != "help"]


def test_every_variable_is_registrator_and_the_flag_name():
    wrong = []
    for name, command, param in options():
        flag = max(param.opts, key=len)
        expected = COMMAND_SCOPED.get((name, param.name or ""),
                                      f"{PREFIX}_{flag.lstrip('-').replace('-', '_').upper()}")
        got = variables(command, param)
        if (name, param.name) in NO_VARIABLE:
            if got:
                wrong.append(f"{name} {flag}: a mode switch, yet read from {got}")
        elif got and got[0] != expected:
            wrong.append(f"{name} {flag}: {got[0]}, not {expected}")
    assert not wrong, "\n".join(wrong)


def test_no_variable_is_read_by_two_flags_with_different_defaults():
    seen: dict[str, tuple[str, object]] = {}
    clashes = []
    for name, command, param in options():
        for var in variables(command, param):
            if var in seen and seen[var][1] != param.default and var not in SAME_MEANING:
                clashes.append(f"{var}: {seen[var][0]} ({seen[var][1]!r}) and {name} "
                               f"({param.default!r})")
            seen.setdefault(var, (name, param.default))
    assert not clashes, "\n".join(clashes)


def test_the_mode_switches_really_ignore_the_environment(monkeypatch):
    # REGISTRATOR_HOSTS=1 used to turn `ls` into the host list.
    seen = {}

    def fake_ls(store, keys, name, host, as_json, hosts):
        seen.update(host=host, as_json=as_json, hosts=hosts)

    monkeypatch.setattr("registrator.consumers.commands.ls", fake_ls)
    class Closed:
        def close(self) -> None:
            return

    monkeypatch.setattr("registrator.cli.open_store", lambda _flags, **_kw: Closed())
    env = {"REGISTRATOR_HOSTS": "1", "REGISTRATOR_AS_JSON": "1", "REGISTRATOR_JSON": "1",
           "REGISTRATOR_HOST": "elsewhere"}
    result = CliRunner().invoke(cli, ["ls"], env=env)
    assert result.exit_code == 0, result.output
    assert seen == {"host": None, "as_json": False, "hosts": False}


def test_durations_are_shown_as_duration_not_text():
    shown = []
    for name, command, param in options():
        if param.name in DURATION_FLAGS:
            ctx = click.Context(command, info_name=name)
            record = param.get_help_record(ctx)
            assert record is not None
            shown.append(record[0])
    assert shown
    assert all(s.endswith(" DURATION") for s in shown), shown


def test_top_level_help_gives_each_commands_first_sentence_whole():
    result = CliRunner().invoke(cli, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    listing = " ".join(result.output.split("Commands:")[1].split())
    assert "..." not in listing, result.output
    for name, command in ((n, c) for n, c in commands() if " " not in n):
        first = re.split(r"(?<=\.)\s", " ".join((command.help or "").split()))[0]
        assert first in listing, f"{name}: {first!r} not whole in the listing"


def test_a_usage_hint_names_a_command_that_exists():
    proc = subprocess.run([sys.executable, "-m", "registrator", "set", "--help"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "registrator registrator" not in proc.stderr
    assert "(see: registrator --help)" in proc.stderr, proc.stderr
    assert "registrator config set" in proc.stderr  # where `set` lives


@pytest.mark.parametrize("argv", [["ls", "--bogus"], ["run", "--ttl"]])
def test_a_subcommands_hint_is_its_own_help(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"(see: registrator {argv[0]} --help)" in capsys.readouterr().err
