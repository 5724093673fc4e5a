"""`registrator render` reviewed as an adversary (issue 20, second pass): the reload-debt
marker beside DEST, the environment and the life of check and reload commands, and files
that hold secrets. Real etcd, `registrator render` as a process, real /bin/sh commands."""

from __future__ import annotations

import contextlib

from consumer_support import cli, put_entry
from harness import wait_until

TEMPLATE = "{% for e in service('web') %}server {{ e.id }} {{ e | hostport }}\n{% endfor %}"


def render_args(etcd, prefix, src, dest, *extra):
    return ("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix, "--template",
            str(src), "--dest", str(dest), "--wait", "20ms:200ms", *extra)


def test_reload_marker_never_follows_a_symlink(etcd, prefix, tmp_path, consumer):
    """Whoever can write in DEST's directory must not get render (often root) to truncate or
    create a file of their choosing by planting a symlink where the reload-debt marker goes:
    one to an existing file while render runs, a dangling one before a --once."""
    src, dest, victim = tmp_path / "t.j2", tmp_path / "out.cfg", tmp_path / "victim"
    src.write_text(TEMPLATE)
    victim.write_text("precious\n")
    victim.chmod(0o644)
    marker = tmp_path / ".out.cfg.reload-pending"
    render = consumer(*render_args(etcd, prefix, src, dest, "--reload-cmd", "true"))
    wait_until(lambda: render.logged("reloaded"), message="first render and reload")
    marker.symlink_to(victim)
    put_entry(etcd, prefix, "web", "a", 8080)
    wait_until(lambda: len(render.logged("reloaded")) == 2, message="second reload")
    assert victim.read_text() == "precious\n"
    assert victim.stat().st_mode & 0o777 == 0o644
    assert render.stop() == 0

    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    created = tmp_path / "created-by-render"
    marker.symlink_to(created)
    put_entry(etcd, prefix, "web", "b", 8081)
    out = cli(*render_args(etcd, prefix, src, dest, "--once",
                           "--reload-cmd", "false"))
    assert out.returncode == 1, out.stderr
    assert not created.exists()
