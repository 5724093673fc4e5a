"""Pure parts of the consumers: registry parsing, template context and helpers, debounce
timing with a fake clock, staging and swap, TOML jobs, and failures that keep the last file."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from registrator import logs
from registrator.consumers import templates
from registrator.consumers.debounce import Debouncer, parse_wait
from registrator.consumers.files import Outcome, install, run_command
from registrator.consumers.jobs import job, load_config, parse_mode
from registrator.consumers.ls import printable
from registrator.consumers.registry import MAX_VALUE_BYTES, Registry
from registrator.consumers.render import RenderLoop, Template, render_all
from registrator.errors import ConfigError
from registrator.keys import KeySpace

KEYS = KeySpace("/r")


def entry(name="web", sid="h1:c1:80", address="127.0.0.1", port=8080, host="h1", **extra):
    record = {"version": 1, "name": name, "id": sid, "address": address, "port": port,
              "protocol": "tcp", "tags": [], "meta": {}, "host": host, "container_id": "c1",
              "container_name": "/c1", "image": "busybox", "health": "none",
              "registered_at": "2026-01-01T00:00:00.000Z"}
    record.update(extra)
    return record


def registry(*records):
    reg = Registry(KEYS)
    reg.load((KEYS.service(r["name"], r["id"]), json.dumps(r).encode()) for r in records)
    return reg


def snap(reg):
    return templates.Snapshot(reg.services(), reg.hosts())


# --- registry ---------------------------------------------------------------------------

def test_registry_groups_by_name_and_sorts_by_host_then_id():
    reg = registry(entry(sid="b", host="h2"), entry(sid="a", host="h2"), entry(sid="z", host="h1"),
                   entry(name="api", sid="x"))
    assert list(reg.services()) == ["api", "web"]
    assert [e["id"] for e in reg.services()["web"]] == ["z", "a", "b"]
    assert [(e["name"], e["id"]) for e in reg.entries()] == [
        ("api", "x"), ("web", "a"), ("web", "b"), ("web", "z")]


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    logs.configure("info", stream=stream, json_output=True)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.configure("info", stream=sys.stderr)


def test_hostile_entries_are_skipped_with_one_warning_each(log_lines):
    reg = Registry(KEYS)
    good = entry()
    reg.load([
        (KEYS.service("web", good["id"]), json.dumps(good).encode()),
        (KEYS.service("web", "big"), b"x" * (MAX_VALUE_BYTES + 1)),
        (KEYS.service("web", "junk"), b"{not json"),
        (KEYS.service("web", "liar"), json.dumps(entry(sid="other")).encode()),
        (KEYS.services_root + "web/a/b", json.dumps(entry()).encode()),
        (KEYS.host("h1"), b"[1, 2]"),
    ])
    assert [e["id"] for e in reg.entries()] == [good["id"]]
    assert reg.hosts() == []
    warnings = log_lines()
    assert len(warnings) == 5
    assert all(w["event"] == "skipping a registry entry" for w in warnings)


def test_host_records_get_their_hostname_from_the_key():
    reg = Registry(KEYS)
    reg.put(KEYS.host("b"), b'{"address": "10.0.0.2"}')
    reg.put(KEYS.host("a"), b'{"address": "10.0.0.1", "hostname": "a"}')
    assert [h["hostname"] for h in reg.hosts()] == ["a", "b"]


# --- templates --------------------------------------------------------------------------

def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def render_text(tmp_path, text, reg, environ=None):
    src = write(tmp_path, "t.j2", text)
    env = templates.environment(src)
    return templates.render(env, src, templates.context(snap(reg), environ or {}))


def test_context_services_service_hosts_env_config(tmp_path):
    reg = registry(entry(sid="a", tags=["blue"]), entry(sid="b", address="::1", port=81))
    text = ("{% for e in service('web') %}{{ e | hostport }} {% endfor %}|"
            "{{ service('web', tag='blue') | length }}|{{ service('nope') }}|"
            "{{ services | list }}|{{ hosts }}|{{ env.X }}|{{ config('app', 'k', 'dflt') }}\n")
    assert render_text(tmp_path, text, reg, {"X": "1"}) == (
        "127.0.0.1:8080 [::1]:81 |1|[]|['web']|[]|1|dflt\n")


def test_helpers_filter_group_hash(tmp_path):
    reg = registry(entry(sid="a", host="h1", meta={"zone": "x"}, tags=["t"]),
                   entry(sid="b", host="h2", meta={"zone": "y"}),
                   entry(sid="c", host="h2", meta={"zone": "x"}))
    text = ("{{ service('web') | meta('zone', 'x') | map(attribute='id') | join(',') }}|"
            "{{ service('web') | tagged('t') | map(attribute='id') | join(',') }}|"
            "{% for k, v in (service('web') | group_by('meta.zone')).items() %}"
            "{{ k }}={{ v | length }};{% endfor %}|"
            "{{ service('web') | sort(attribute='port,id', reverse=true) | map(attribute='id')"
            " | join(',') }}|{{ (service('web') | hash) | length }}")
    assert render_text(tmp_path, text, reg) == "a,c|a|x=2;y=1;|c,b,a|16"


def test_empty_service_list_renders(tmp_path):
    text = "backends:{% for e in service('web') %} {{ e.port }}{% endfor %}\n"
    assert render_text(tmp_path, text, registry()) == "backends:\n"


def test_undefined_names_are_errors_naming_the_line(tmp_path):
    with pytest.raises(templates.TemplateFailedError) as info:
        render_text(tmp_path, "ok\n{{ nope.field }}\n", registry())
    assert info.value.line == 2
    assert "nope" in info.value.reason


def test_syntax_error_names_the_line(tmp_path):
    with pytest.raises(templates.TemplateFailedError) as info:
        render_text(tmp_path, "a\nb\n{% for x in %}\n", registry())
    assert info.value.line == 3


def test_require_keeps_the_previous_output(tmp_path):
    with pytest.raises(templates.KeepPreviousError, match="web"):
        render_text(tmp_path, "{% set web = require('web') %}x", registry())
    assert render_text(tmp_path, "{{ require('web') | length }}", registry(entry())) == "1"


# --- debounce ---------------------------------------------------------------------------

def test_parse_wait():
    assert parse_wait("200ms:2s") == (0.2, 2.0)
    assert parse_wait("1s") == (1.0, 10.0)
    for bad in ("x", "2s:1s", "1s:y"):
        with pytest.raises(ConfigError):
            parse_wait(bad)


def test_debounce_waits_for_quiet_but_never_past_max():
    d = Debouncer(0.2, 2.0)
    assert not d.pending
    assert d.deadline() is None
    d.change(10.0)
    assert not d.due(10.19)
    assert d.due(10.2)
    # A steady stream of changes, each 0.1 s apart: due at first + MAX, not later.
    t = 10.0
    while t < 11.9:
        t += 0.1
        d.change(t)
        assert not d.due(t)
    assert d.due(12.0)
    d.done()
    assert not d.pending
    assert not d.due(100.0)


def test_burst_gives_bounded_renders():
    """200 changes within 1 s, MIN=0.2: at most ceil(1/0.2)+1 renders."""
    d, renders = Debouncer(0.2, 2.0), 0
    for i in range(400):  # fake clock in 5 ms steps over 2 s, changes only in the first 1 s
        now = i * 0.005
        if now < 1.0:
            d.change(now)
        if d.due(now):
            renders += 1
            d.done()
    assert 1 <= renders <= 6


def test_now_due_is_due_at_once():
    d = Debouncer(5, 10)
    d.now_due()
    assert d.due(0.0)


# --- files ------------------------------------------------------------------------------

def test_install_atomic_swap_and_mode(tmp_path):
    dest = tmp_path / "out.cfg"
    dest.write_text("old\n")
    inode = dest.stat().st_ino
    assert install("new\n", str(dest), check_cmd=None, in_place=False, mode=0o600).ok
    assert dest.read_text() == "new\n"
    assert dest.stat().st_ino != inode
    assert dest.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.cfg"]  # nothing staged left behind


def test_install_in_place_keeps_the_inode(tmp_path):
    dest = tmp_path / "out.cfg"
    dest.write_text("a much longer old content\n")
    inode = dest.stat().st_ino
    assert install("new\n", str(dest), check_cmd=None, in_place=True, mode=None).ok
    assert dest.read_text() == "new\n"
    assert dest.stat().st_ino == inode


def test_check_runs_on_the_staged_copy_and_failure_keeps_dest(tmp_path):
    dest = tmp_path / "out.cfg"
    dest.write_text("good\n")
    seen = tmp_path / "seen"
    outcome = install("bad\n", str(dest),
                      check_cmd=f"cp {{src}} {seen}; grep -q good {{src}} || "
                                "{ echo 'no good' >&2; exit 3; }",
                      in_place=False, mode=None)
    assert not outcome.ok
    assert "exit 3: no good" in outcome.detail
    assert seen.read_text() == "bad\n"
    assert dest.read_text() == "good\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.cfg", "seen"]


def test_run_command_timeout_and_status():
    assert run_command("true").ok
    assert run_command("exit 4").detail.startswith("exit 4")
    assert "timed out" in run_command("sleep 5", timeout=0.2).detail


# --- jobs -------------------------------------------------------------------------------

def test_load_config_resolves_paths_against_the_file(tmp_path):
    write(tmp_path, "a.j2", "x")
    cfg = write(tmp_path, "render.toml", """
[[template]]
src = "a.j2"
dest = "a.out"
check_cmd = "true {src}"
reload_cmd = "true"
wait = "10ms:50ms"
in_place = true
mode = "0640"

[[template]]
src = "a.j2"
dest = "b.out"
""")
    first, second = load_config(cfg)
    assert first.src == str(tmp_path / "a.j2")
    assert first.dest == str(tmp_path / "a.out")
    assert (first.wait, first.in_place, first.mode) == ((0.01, 0.05), True, 0o640)
    assert second.wait == (0.2, 2.0)
    assert second.reload_cmd is None


@pytest.mark.parametrize(("text", "problem"), [
    ("", "at least one"),
    ("[[template]]\nsrc = 'a.j2'\n", "dest must be a path"),
    ("[[template]]\nsrc = 'a.j2'\ndest = 'x'\nbogus = 1\n", "unknown key"),
    ("[[template]]\nsrc = 'missing.j2'\ndest = 'x'\n", "not a readable file"),
    ("[[template]]\nsrc = 'a.j2'\ndest = 'x'\nwait = 'soon'\n", "--wait"),
    ("not toml [", "--config"),
])
def test_bad_config_names_the_problem(tmp_path, text, problem):
    write(tmp_path, "a.j2", "x")
    with pytest.raises(ConfigError, match=problem):
        load_config(write(tmp_path, "render.toml", text))


def test_parse_mode():
    assert parse_mode("0644") == 0o644
    assert parse_mode(None) is None
    with pytest.raises(ConfigError):
        parse_mode("rw")


# --- a render cycle ---------------------------------------------------------------------

def always_ok(_cmd, _secrets):
    return Outcome(ok=True)


def make(tmp_path, name, text, **kwargs):
    src = write(tmp_path, f"{name}.j2", text)
    return Template(job(src, str(tmp_path / f"{name}.out"), **kwargs))


def test_cycle_renders_then_does_nothing_when_unchanged(tmp_path):
    reloads = []
    item = make(tmp_path, "a", "{{ service('web') | length }}\n", reload_cmd="r")
    reload = lambda cmd, _: reloads.append(cmd.reload_cmd) or Outcome(ok=True)  # noqa: E731
    assert render_all([item], snap(registry(entry())), reload)
    assert Path(item.job.dest).read_text() == "1\n"
    assert render_all([item], snap(registry(entry())), reload)
    assert reloads == ["r"]


def test_one_reload_for_templates_that_changed_together(tmp_path):
    reloads = []
    items = [make(tmp_path, n, f"{n}{{{{ service('web') | length }}}}", reload_cmd="same")
             for n in ("a", "b", "c")]
    assert render_all(items, snap(registry(entry())),
                      lambda cmd, _: reloads.append(cmd.reload_cmd) or Outcome(ok=True))
    assert reloads == ["same"]


def test_template_error_keeps_the_last_good_file_and_recovers(tmp_path, log_lines):
    item = make(tmp_path, "a", "{{ service('web')[0].port }}\n")
    ok = always_ok
    assert render_all([item], snap(registry(entry())), ok)
    assert not render_all([item], snap(registry()), ok)  # index error: no entries
    assert Path(item.job.dest).read_text() == "8080\n"
    assert not item.ok
    errors = [e for e in log_lines() if e["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["line"] == 1
    assert errors[0]["template"] == item.job.src
    assert render_all([item], snap(registry(entry(port=9))), ok)
    assert Path(item.job.dest).read_text() == "9\n"


def test_failed_reload_is_retried_at_the_next_cycle_after_its_backoff(tmp_path):
    item = make(tmp_path, "a", "{{ service('web') | length }}", reload_cmd="r")
    results = [Outcome(ok=False, detail="boom"), Outcome(ok=True)]
    calls = []
    reload = lambda cmd, _: calls.append(cmd.reload_cmd) or results.pop(0)  # noqa: E731
    assert not render_all([item], snap(registry(entry())), reload, clock=lambda: 100.0)
    assert item.reload_pending
    # Same output 0.5 s later (another service changed): the retry waits for its 1 s.
    assert not render_all([item], snap(registry(entry())), reload, clock=lambda: 100.5)
    assert calls == ["r"]
    assert render_all([item], snap(registry(entry())), reload, clock=lambda: 101.0)
    assert calls == ["r", "r"]
    assert not item.reload_pending


def test_new_content_reloads_at_once_and_pays_the_debts_of_its_command(tmp_path):
    owing = make(tmp_path, "a", "{{ service('web') | length }}", reload_cmd="same")
    other = make(tmp_path, "b", "{{ service('api') | length }}", reload_cmd="same")
    calls = []
    results = [Outcome(ok=False), Outcome(ok=True)]
    reload = lambda cmd, _: calls.append(cmd.reload_cmd) or results.pop(0)  # noqa: E731
    assert not render_all([owing, other], snap(registry(entry())), reload, clock=lambda: 0.0)
    # `other` gets new content before `owing`'s retry time: one reload, both paid.
    assert render_all([owing, other], snap(registry(entry(), entry(name="api"))), reload,
                      clock=lambda: 0.1)
    assert calls == ["same", "same"]
    assert not owing.reload_pending


def test_mode_of_existing_dest_is_kept(tmp_path):
    item = make(tmp_path, "a", "x")
    Path(item.job.dest).write_text("old")
    os.chmod(item.job.dest, 0o640)  # noqa: PTH101
    assert render_all([item], snap(registry()), always_ok)
    assert Path(item.job.dest).stat().st_mode & 0o777 == 0o640


def test_printable_escapes_only_control_characters():
    assert printable("café web") == "café web"
    assert printable("a\x1b[2Jb\n") == "a\\x1b[2Jb\\n"


def test_healthz_says_why_the_registry_is_not_watched(tmp_path):
    """A store that refuses the session (a ZooKeeper server back empty) is named in
    render's /healthz text, not only "not watching"."""
    follower = SimpleNamespace(watching=threading.Event(), problem=None)
    loop = RenderLoop(follower, list, always_ok)
    assert loop.healthy() == "not watching the registry"
    follower.problem = "store unreachable: zookeeper: the servers refused our session"
    assert loop.healthy() == follower.problem
    follower.watching.set()
    assert loop.healthy() is None
