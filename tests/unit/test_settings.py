"""settings.build_config and the CLI's handling of bad configuration (SPEC §7)."""

from __future__ import annotations

import socket

import pytest

from registrator import cli, settings
from registrator.errors import ConfigError
from registrator.settings import build_config

SECRET = "s3cr3t-Pa55word"  # noqa: S105 - a test value, never a real one


def build(**overrides):
    flags = {"etcd_endpoints": "http://127.0.0.1:2379", "ip": "127.0.0.1", "hostname": "host1"}
    flags.update(overrides)
    return build_config(**flags)


@pytest.fixture
def tls_files(tmp_path):
    paths = {}
    for name in ("ca.pem", "cert.pem", "key.pem"):
        path = tmp_path / name
        path.write_text("-----BEGIN X-----\n", encoding="utf-8")
        paths[name.split(".", 1)[0]] = str(path)
    return paths


# --- good configuration ------------------------------------------------------------------------


def test_defaults():
    cfg = build()
    assert cfg.prefix == "/registrator"
    assert cfg.ttl == 30
    assert cfg.resync == 60
    assert cfg.layouts == ()
    assert cfg.policy.hostname == "host1"
    assert cfg.policy.host_ip == "127.0.0.1"
    assert (cfg.policy.internal, cfg.policy.explicit, cfg.policy.register_unhealthy) == (
        False, False, False)
    assert [str(e) for e in cfg.etcd.endpoints] == ["http://127.0.0.1:2379"]
    assert cfg.metrics_addr is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30), ("30s", 30), ("1m", 60), (" 45s ", 45), ("2", 2), ("2.5", 3), ("1h", 3600)],
)
def test_ttl_durations(text, seconds):
    assert build(ttl=text).ttl == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("30s", 30.0), ("500ms", 0.5), ("1m", 60.0), ("0", 0.0)],
)
def test_resync_durations(text, seconds):
    assert build(resync=text).resync == pytest.approx(seconds)


def test_etcd_timeout_duration():
    assert build(etcd_timeout="500ms").etcd.timeout == pytest.approx(0.5)


def test_endpoints_list():
    cfg = build(etcd_endpoints=" http://a:2379 , https://b , c:1234,")
    assert [str(e) for e in cfg.etcd.endpoints] == [
        "http://a:2379", "https://b:2379", "http://c:1234"]


@pytest.mark.parametrize(("text", "expected"), [(" 10.0.0.1 ", "10.0.0.1"),
                                                ("2001:DB8::1", "2001:db8::1")])
def test_ip_is_normalised(text, expected):
    assert build(ip=text).policy.host_ip == expected


def test_prefix_layout_and_host_labels():
    cfg = build(prefix="//svc//reg/", layout=("gliderlabs", "gliderlabs"),
                host_label=("zone=a", "rack=r1=x", "zone=b"))
    assert cfg.prefix == "/svc/reg"
    assert cfg.layouts == ("gliderlabs",)
    assert cfg.host_labels == (("rack", "r1=x"), ("zone", "b"))


@pytest.mark.parametrize(("text", "expected"), [("0.0.0.0:9100", ("0.0.0.0", 9100)),
                                                (":9100", ("0.0.0.0", 9100)),
                                                ("[::1]:9100", ("::1", 9100))])
def test_metrics_addr(text, expected):
    assert build(metrics_addr=text).metrics_addr == expected


def test_policy_flags():
    cfg = build(internal=True, network="backend", explicit=True, register_unhealthy=True,
                ipv6=True)
    assert (cfg.policy.internal, cfg.policy.network, cfg.policy.explicit,
            cfg.policy.register_unhealthy, cfg.policy.ipv6) == (True, "backend", True, True, True)
    assert build().policy.ipv6 is False


def test_tls_and_auth_over_https(tls_files):
    cfg = build(etcd_endpoints="https://etcd:2379", etcd_cacert=tls_files["ca"],
                etcd_cert=tls_files["cert"], etcd_key=tls_files["key"], etcd_user="root",
                etcd_password=SECRET)
    assert cfg.etcd.user == "root"
    assert cfg.etcd.password == SECRET
    assert cfg.etcd.endpoints[0].secure


def test_password_file(tmp_path):
    path = tmp_path / "pw"
    path.write_text(SECRET + "\n", encoding="utf-8")
    cfg = build(etcd_endpoints="https://etcd", etcd_user="root", etcd_password_file=str(path))
    assert cfg.etcd.password == SECRET


@pytest.mark.parametrize("source", ["env", "file"])
def test_password_never_in_repr(tmp_path, source):
    extra = {"etcd_password": SECRET}
    if source == "file":
        path = tmp_path / "pw"
        path.write_text(SECRET, encoding="utf-8")
        extra = {"etcd_password_file": str(path)}
    cfg = build(etcd_endpoints="https://etcd", etcd_user="root", **extra)
    assert cfg.etcd.password == SECRET
    for text in (repr(cfg), str(cfg), repr(cfg.etcd), str(cfg.etcd)):
        assert SECRET not in text
        assert "root" in text


# --- bad configuration: ConfigError naming the flag ----------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"ttl": "abc"}, "--ttl"),
        ({"ttl": ""}, "--ttl"),
        ({"ttl": "-5"}, "--ttl"),
        ({"ttl": "1"}, "--ttl"),
        ({"ttl": "1s"}, "--ttl"),
        ({"ttl": "500ms"}, "--ttl"),
        ({"ttl": "0"}, "--ttl"),
        ({"resync": "soon"}, "--resync"),
        ({"resync": "-1s"}, "--resync"),
        ({"etcd_timeout": "x"}, "--etcd-timeout"),
        ({"layout": ("skydns-typo",)}, "--layout"),
        ({"layout": ("gliderlabs", "nope")}, "--layout"),
        ({"etcd_endpoints": "ftp://etcd:2379"}, "--etcd-endpoints"),
        ({"etcd_endpoints": "unix:///run/etcd.sock"}, "--etcd-endpoints"),
        ({"etcd_endpoints": ""}, "--etcd-endpoints"),
        ({"etcd_endpoints": " , "}, "--etcd-endpoints"),
        ({"etcd_endpoints": "http://etcd:99999"}, "--etcd-endpoints"),
        ({"etcd_endpoints": "http://etcd:2379/v3"}, "--etcd-endpoints"),
        ({"etcd_endpoints": "http://:2379"}, "--etcd-endpoints"),
        ({"host_label": ("novalue",)}, "--host-label"),
        ({"host_label": ("=value",)}, "--host-label"),
        ({"host_label": ("a=" + "x" * 40_000, "b=" + "y" * 40_000)}, "--host-label"),
        ({"ip": "abc"}, "--ip"),
        ({"ip": "300.1.1.1"}, "--ip"),
        ({"ip": "0.0.0.0"}, "--ip"),
        ({"ip": "::"}, "--ip"),
        ({"prefix": "/a/../b"}, "--prefix"),
        ({"prefix": "/"}, "--prefix"),
        ({"hostname": "a/b"}, "--hostname"),
        ({"hostname": ".."}, "--hostname"),
        ({"network": "a/b"}, "--network"),
        ({"metrics_addr": "9100"}, "--metrics-addr"),
        ({"metrics_addr": "host:port"}, "--metrics-addr"),
        ({"metrics_addr": ":70000"}, "--metrics-addr"),
        ({"etcd_cacert": "/nonexistent/ca.pem"}, "--etcd-cacert"),
        ({"etcd_password_file": "/nonexistent/pw"}, "--etcd-password-file"),
        ({"etcd_user": "root"}, "--etcd-user"),
        ({"etcd_endpoints": "https://etcd", "etcd_user": "root"}, "--etcd-user"),
        ({"etcd_endpoints": "https://etcd", "etcd_password": SECRET}, "--etcd-user"),
    ],
)
def test_bad_config_names_the_flag(overrides, flag):
    with pytest.raises(ConfigError) as excinfo:
        build(**overrides)
    message = str(excinfo.value)
    assert flag in message
    assert "\n" not in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("which", "flag"), [("cert", "--etcd-cert"), ("key", "--etcd-key")],
    ids=["cert-without-key", "key-without-cert"],
)
def test_cert_and_key_go_together(tls_files, which, flag):
    with pytest.raises(ConfigError, match=flag):
        build(etcd_endpoints="https://etcd", **{f"etcd_{which}": tls_files[which]})


@pytest.mark.parametrize(
    ("endpoints", "files"),
    [
        ("http://etcd:2379", ("ca",)),
        ("http://etcd:2379", ("cert", "key")),
        ("https://a:2379,http://b:2379", ("ca",)),
        ("etcd:2379", ("ca", "cert", "key")),
    ],
    ids=["cacert", "client-cert", "mixed-endpoints", "no-scheme-means-http"],
)
def test_tls_files_with_http_endpoints(tls_files, endpoints, files):
    paths = {f"etcd_{'cacert' if f == 'ca' else f}": tls_files[f] for f in files}
    with pytest.raises(ConfigError, match="--etcd-endpoints"):
        build(etcd_endpoints=endpoints, **paths)


def test_password_auth_over_http_is_refused():
    with pytest.raises(ConfigError) as excinfo:
        build(etcd_endpoints="http://etcd:2379", etcd_user="root", etcd_password=SECRET)
    assert SECRET not in str(excinfo.value)


def test_password_auth_over_http_names_the_flag():
    with pytest.raises(ConfigError) as excinfo:
        build(etcd_endpoints="http://etcd:2379", etcd_user="root", etcd_password=SECRET)
    assert "--etcd-endpoints" in str(excinfo.value) or "--etcd-user" in str(excinfo.value)


# --- host address detection --------------------------------------------------------------------


class _FakeSocket:
    def __init__(self, address: str | None) -> None:
        self.address = address

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def connect(self, target):
        if self.address is None:
            raise OSError("Network is unreachable")

    def getsockname(self):
        return (self.address, 40000)


@pytest.mark.parametrize(
    ("address", "expected"), [("10.0.0.7", "10.0.0.7"), ("2001:db8::7", "2001:db8::7")]
)
def test_ip_detected_from_default_route(monkeypatch, address, expected):
    monkeypatch.setattr(settings.socket, "socket", lambda *_args: _FakeSocket(address))
    assert build(ip=None).policy.host_ip == expected


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", None])
def test_ip_detection_never_guesses_loopback(monkeypatch, address):
    monkeypatch.setattr(settings.socket, "socket", lambda *_args: _FakeSocket(address))
    with pytest.raises(ConfigError, match="--ip"):
        build(ip=None)


def test_hostname_defaults_to_the_machine_name():
    cfg = build_config(etcd_endpoints="http://127.0.0.1:2379", ip="127.0.0.1")
    assert cfg.policy.hostname == socket.gethostname().strip()


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch):
    import os  # noqa: PLC0415 - only this fixture needs it

    for name in list(os.environ):
        if name.startswith("REGISTRATOR_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _exit_code(argv):
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    return excinfo.value.code


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--bogus"],
        ["run", "--log-level", "loud"],
        ["run", "--ttl"],
        ["nosuchcommand"],
        ["run", "--ttl", "1", "--ip", "127.0.0.1", "--hostname", "h"],
        ["run", "--etcd-endpoints", "ftp://x", "--ip", "127.0.0.1", "--hostname", "h"],
        ["run", "--layout", "nope", "--ip", "127.0.0.1", "--hostname", "h"],
        ["run", "--etcd-password", SECRET],
    ],
    ids=["unknown-flag", "bad-choice", "missing-value", "unknown-command", "ttl-too-small",
         "bad-endpoint", "bad-layout", "no-password-flag"],
)
def test_bad_flags_exit_2_with_one_line(clean_env, capsys, argv):
    assert _exit_code(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("registrator: error:")
    assert SECRET not in captured.err
    assert captured.out == ""


def test_config_error_from_env_var_exits_2_naming_the_flag(clean_env, capsys):
    clean_env.setenv("REGISTRATOR_TTL", "1")
    assert _exit_code(["run", "--ip", "127.0.0.1", "--hostname", "h"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "--ttl" in lines[0]


def test_password_from_env_never_printed(clean_env, capsys):
    clean_env.setenv("REGISTRATOR_ETCD_PASSWORD", SECRET)
    code = _exit_code(["run", "--etcd-user", "root", "--etcd-endpoints", "http://etcd:2379",
                       "--ip", "127.0.0.1", "--hostname", "h"])
    assert code == 2
    captured = capsys.readouterr()
    assert SECRET not in captured.err + captured.out
    assert len(captured.err.splitlines()) == 1


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["--version"]])
def test_help_and_version_exit_0(clean_env, capsys, argv):
    assert _exit_code(argv) == 0
    captured = capsys.readouterr()
    assert captured.out
    assert captured.err == ""


def test_run_help_lists_the_flags(clean_env, capsys):
    _exit_code(["run", "--help"])
    out = capsys.readouterr().out
    for flag in ("--etcd-endpoints", "--prefix", "--ttl", "--ip", "--internal", "--network",
                 "--ipv6", "--explicit", "--resync", "--layout", "--host-label", "--keep-on-exit",
                 "--register-unhealthy", "--metrics-addr", "--log-level", "--etcd-cacert",
                 "--etcd-cert", "--etcd-key", "--etcd-user", "--etcd-password-file"):
        assert flag in out
    assert "REGISTRATOR_TTL" in out
    assert "REGISTRATOR_IPV6" in out


@pytest.mark.parametrize("domain", ["", "a..b", "under_score.local", "-x.local", "a b"])
def test_bad_skydns_domain_names_the_flag(domain):
    with pytest.raises(ConfigError, match="--skydns-domain"):
        build(skydns_domain=domain)


def test_skydns_domain_is_normalised():
    assert build(skydns_domain="Svc.Example.ORG.").skydns_domain == "svc.example.org"


def test_unclosed_ipv6_bracket_is_a_config_error():
    with pytest.raises(ConfigError, match="--etcd-endpoints"):
        build(etcd_endpoints="http://[::1")
