"""What `render` hands to templates and what it logs (issue 20): entry and host fields checked
as strictly as the daemon writes them, quoting filters, masking of configuration values,
templates that are not UTF-8, bounded command output, and --in-place restoring DEST when a
write fails half-way."""

from __future__ import annotations

import io
import json
import os
import sys

import pytest

from registrator import logs
from registrator.consumers import files, templates
from registrator.consumers.jobs import job
from registrator.consumers.masking import mask
from registrator.consumers.process import Capture, Outcome, reason_lines, run_command
from registrator.consumers.registry import Registry
from registrator.consumers.render import Template, render_all
from registrator.keys import KeySpace

KEYS = KeySpace("/r")


def entry(**extra):
    record = {"version": 1, "name": "web", "id": "h1:c1:80", "address": "127.0.0.1",
              "port": 8080, "protocol": "tcp", "tags": [], "meta": {}, "host": "h1",
              "container_id": "c1", "container_name": "/c1", "image": "busybox:1.36",
              "health": "none", "registered_at": "2026-01-01T00:00:00.000Z"}
    record.update(extra)
    return record


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    logs.configure("info", stream=stream, json_output=True)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.configure("info", stream=sys.stderr)


NL = "\n    server x 10.6.6.6:80"
BAD = [
    ("address", "127.0.0.1" + NL), ("address", "fe80::1%lo" + NL), ("address", "fe80::1%a b"),
    ("address", "web.example.com"), ("address", "0.0.0.0"), ("address", "127.000.0.1"),
    ("address", "[::1]"), ("port", 0), ("port", 65536), ("protocol", "sctp"),
    ("host", "h1" + NL), ("host", "a/b"), ("container_name", "/c" + NL),
    ("container_name", "/c d"), ("container_id", "c1" + NL), ("image", "busybox" + NL),
    ("health", "fine" + NL), ("registered_at", "now" + NL),
]


@pytest.mark.parametrize(("field", "value"), BAD, ids=[f"{f}={v!r}"[:40] for f, v in BAD])
def test_entry_fields_are_checked_as_the_daemon_writes_them(log_lines, field, value):
    reg = Registry(KEYS)
    bad = entry(**{"id": "bad", field: value})
    assert reg.put(KEYS.service("web", "bad"), json.dumps(bad).encode()) is None
    assert reg.put(KEYS.service("web", "h1:c1:80"), json.dumps(entry()).encode()) is not None
    (warning,) = log_lines()
    assert warning["key"] == "/r/services/web/bad"
    assert field in warning["reason"]
    assert "\n" not in warning["reason"]


def test_good_entries_of_every_kind_are_kept():
    reg = Registry(KEYS)
    for i, extra in enumerate([
            {"address": "::1"}, {"address": "fe80::1%eth0"}, {"protocol": "udp", "port": 1},
            {"port": 65535, "health": "healthy"}, {"image": "reg.io:5000/a/b@sha256:" + "a" * 64},
            {"container_name": "proj_web_1", "image": ""},
            {"tags": ["free text { } ; \n"], "meta": {"k": "v\n'\""}}]):
        record = entry(id=f"id{i}", **extra)
        assert reg.put(KEYS.service("web", f"id{i}"), json.dumps(record).encode()) is not None


def test_host_record_fields_are_checked(log_lines):
    reg = Registry(KEYS)
    assert reg.put(KEYS.host("h1"), json.dumps(
        {"hostname": "h1", "address": "10.0.0.1", "labels": {"zone": "a\nb"}}).encode())
    for hostname, record in [
            ("h2", {"address": "10.0.0.2\nserver x"}), ("h3", {"hostname": "h4"}),
            ("h5", {"labels": {"zone": 1}}), ("h6", {"labels": "zone"}),
            ("h7", {"lease": "7f\n"}), ("h8", {"ttl": "30"})]:
        assert reg.put(KEYS.host(hostname), json.dumps(record).encode()) is None, hostname
    assert [w["key"] for w in log_lines()] == [f"/r/hosts/h{i}" for i in (2, 3, 5, 6, 7, 8)]


def render_text(tmp_path, text, services=None):
    src = tmp_path / "t.j2"
    src.write_text(text)
    env = templates.environment(str(src))
    snap = templates.Snapshot(services or {}, [])
    return templates.render(env, str(src), templates.context(snap, {}))


def test_quoting_filters(tmp_path):
    src = ("{% set a = 'web_app-1.2:80' %}{% set b = \"it's a \\\"b\\\" \\\\ #x\\n;{}\" %}"
           "{{ a | haproxy_quote }}|{{ b | haproxy_quote }}|{{ '' | haproxy_quote }}|"
           "{{ a | nginx_quote }}|{{ b | nginx_quote }}|{{ {'k': b} | json }}")
    out = render_text(tmp_path, src)
    parts = out.split("|")
    assert parts[0] == "web_app-1.2:80"
    assert parts[1] == "'it'\\''s a \"b\" \\ #x'\\x0a';{}'"
    assert parts[2] == "''"
    assert parts[3] == "web_app-1.2:80"
    assert parts[4] == '"it\'s a \\"b\\" \\\\ #x\\n;{}"'
    assert json.loads(parts[5]) == {"k": "it's a \"b\" \\ #x\n;{}"}


def test_non_utf8_template_names_the_line_and_the_byte(tmp_path):
    src = tmp_path / "t.j2"
    src.write_bytes(b"line1\nline2\n{{ x }} caf\xe9\nline4\n")
    env = templates.environment(str(src))
    with pytest.raises(templates.TemplateFailedError) as failed:
        templates.render(env, str(src), templates.context(templates.Snapshot({}, []), {}))
    assert failed.value.line == 3
    assert failed.value.reason == "not UTF-8 at byte 23"


def test_non_utf8_included_template_names_that_file(tmp_path):
    (tmp_path / "inc.j2").write_bytes(b"ok\n\xff\n")
    src = tmp_path / "t.j2"
    src.write_text("a\n{% include 'inc.j2' %}\n")
    env = templates.environment(str(src))
    with pytest.raises(templates.TemplateFailedError) as failed:
        templates.render(env, str(src), templates.context(templates.Snapshot({}, []), {}))
    assert failed.value.template.endswith("inc.j2")
    assert (failed.value.line, failed.value.reason) == (2, "not UTF-8 at byte 3")


def test_in_place_restores_dest_when_a_write_fails_half_way(tmp_path, monkeypatch):
    dest = tmp_path / "out.cfg"
    dest.write_text("old\n" * 100)
    inode = dest.stat().st_ino
    real_write = os.write
    to_dest = {"n": 0}

    def flaky_write(fd, data):
        if os.fstat(fd).st_ino == inode:  # the staged copy is written whole
            to_dest["n"] += 1
            if to_dest["n"] == 2:  # DEST's second write: the disk is full
                raise OSError(28, "No space left on device")
        return real_write(fd, bytes(data)[:100])  # short writes too

    monkeypatch.setattr(files.os, "write", flaky_write)
    outcome = files.install("new\n" * 200, str(dest), check_cmd=None, in_place=True,
                            mode=None)
    assert not outcome.ok
    assert "No space left on device" in outcome.detail
    assert dest.read_text() == "old\n" * 100
    assert dest.stat().st_ino == inode


def test_in_place_secret_gets_its_mode_before_any_byte(tmp_path, monkeypatch):
    """Issue 21.3, reworked here with item 5: a file that will hold a decrypted value is
    0600 before the first secret byte reaches it, not chmod-ed afterwards."""
    dest = tmp_path / "out.cfg"
    dest.write_text("public\n")
    dest.chmod(0o644)
    inode = dest.stat().st_ino
    modes = []
    real_fsync = os.fsync

    def spying_fsync(fd):
        if os.fstat(fd).st_ino == inode:
            modes.append(os.fstat(fd).st_mode & 0o777)
        return real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", spying_fsync)
    assert files.install("password=hunter2\n", str(dest), check_cmd=None, in_place=True,
                         mode=None, secret=True).ok
    assert modes
    assert set(modes) == {0o600}
    assert dest.stat().st_mode & 0o777 == 0o600


def test_capture_keeps_whole_lines_of_the_head_and_the_tail():
    capture = Capture(head=16, tail=16)
    capture.add(b"first line\nsecret-in-the-cut")
    capture.add(b"x" * 1000)
    capture.add(b"\nlast line\n")
    text = capture.text()
    assert text.startswith("first line\n")
    assert text.endswith("last line\n")
    assert "secret" not in text  # a line cut by the bound is left out whole
    assert capture.total == 1000 + len("first line\nsecret-in-the-cut\nlast line\n")


def test_reason_lines_pick_what_says_why_bounded():
    haproxy = ("[NOTICE] (1) : haproxy version is 2.6.12\n"
               "[ALERT] (1) : config : [x.cfg:7] : 'server b/s1' : invalid port '99999'\n"
               "[ALERT] (1) : config : Fatal errors found in configuration.\n")
    assert reason_lines(haproxy) == (
        "[ALERT] (1) : config : [x.cfg:7] : 'server b/s1' : invalid port '99999' | "
        "[ALERT] (1) : config : Fatal errors found in configuration.")
    assert reason_lines("one\ntwo\nthree\nfour\n") == "one | three | four"
    assert reason_lines("") == "no output"
    many = reason_lines("".join(f"error {i}\n" for i in range(100)) + "x" * 1000 + " failed")
    assert many.count(" | ") == 7
    assert "(94 more lines)" in many  # 6 shown + 94 + the last = 101
    assert len(many) < 8 * 310
    assert reason_lines("error: bell\x07 here") == "error: bell\\x07 here"


def test_mask_covers_the_usual_forms_and_spares_short_values_inside_words():
    secret = "pa ss/w'rd"  # noqa: S105 - a test value, to be masked
    text = (f"raw {secret} json {json.dumps(secret)} url pa%20ss%2Fw%27rd "
            "b64 cGEgc3MvdydyZA haproxy 'pa ss/w'\\''rd'")
    masked = mask(text, [secret, "80"])
    assert "ss/w" not in masked
    assert "ss%2F" not in masked
    assert "cGEgc3MvdydyZA" not in masked
    assert mask("port 80, line 1803", ["80"]) == "port ***, line 1803"
    assert mask("nothing", []) == "nothing"


def test_run_command_masks_its_output_and_ends_at_exit(tmp_path):
    outcome = run_command("echo 'error: db password hunter22 refused' >&2; exit 3",
                          secrets=["hunter22"])
    assert outcome.detail == "exit 3: error: db password *** refused"
    pidfile = tmp_path / "pid"
    try:
        assert run_command(f"sleep 60 & echo $! > {pidfile}", timeout=30).ok
    finally:
        os.kill(int(pidfile.read_text()), 9)


def test_run_command_with_a_nul_is_a_failure_not_a_crash():
    outcome = run_command("echo a\0b")
    assert not outcome.ok
    assert "could not run" in outcome.detail


@pytest.mark.parametrize(("text", "values"), [
    # Two values that overlap in the text: masking the first one whole must not leave the
    # rest of the second one readable.
    ("dsn secretA1xyzzyB end", ["secretA1", "A1xyzzyB"]),
    ("dsn A1xyzzyBsecretA1 end", ["secretA1", "A1xyzzyB"]),
    # One value's tail is another's head, and a third sits inside both.
    ("k=hunter2hunter3 end", ["hunter2hu", "2hunter3", "nter2hunt"]),
])
def test_mask_leaves_nothing_of_values_that_overlap(text, values):
    masked = mask(text, values)
    assert masked.startswith(("dsn ", "k="))
    assert masked.endswith(" end")
    for value in values:
        for i in range(len(value) - 3):
            assert value[i:i + 4] not in masked, (value, masked)


class FixedConfig:
    """config() of a store holding one value everywhere."""

    decrypted = False

    def __init__(self, value):
        self.value = value

    def __call__(self, app, key, default=None):
        del app, key, default
        return self.value


@pytest.mark.parametrize("body", [
    "{% for e in require(config('lb', 'svc')) %}{% endfor %}",  # render skipped
    "{{ service(config('lb', 'svc'))[0].port }}",  # template failed: IndexError
    "{{ {}[config('lb', 'svc')] }}",  # template failed: UndefinedError quoting the key
])
def test_config_values_are_masked_in_every_render_log_line(tmp_path, log_lines, body):
    value = "s3cret-service-name"
    src = tmp_path / "t.j2"
    src.write_text(body)
    item = Template(job(str(src), str(tmp_path / "out")))
    assert not render_all([item], templates.Snapshot({}, []), lambda *_: Outcome(ok=True),
                          config=lambda: FixedConfig(value))
    lines = log_lines()
    assert lines
    assert value not in json.dumps(lines)


def test_templates_env_has_no_store_password(monkeypatch, tmp_path):
    """A template that writes its environment out (an env file) must not write render's
    store password into a file that is 0644."""
    monkeypatch.setenv("REGISTRATOR_ETCD_PASSWORD", "etcd-pw-123")
    monkeypatch.setenv("REGISTRATOR_ZOOKEEPER_PASSWORD", "zk-pw-456")
    monkeypatch.setenv("LB_SERVICE", "web")
    src = tmp_path / "env.j2"
    src.write_text("{% for k, v in env | dictsort %}{{ k }}={{ v }}\n{% endfor %}")
    text = templates.render(templates.environment(str(src)), str(src),
                            templates.context(templates.Snapshot({}, [])))
    assert "LB_SERVICE=web" in text
    assert "pw-" not in text
