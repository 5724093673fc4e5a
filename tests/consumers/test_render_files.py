"""`registrator render` and DEST's file system (issue 20, items 1, 5, 7): a directory that
vanishes, a read-only file system, no inodes left, a full disk under --in-place, and a DEST
that is a symlink. Real mounts (a tmpfs of the test's own), real etcd, real processes."""

from __future__ import annotations

import os
import shutil

from consumer_support import cli, put_entry, remount
from harness import wait_until

TEMPLATE = ("# web backends\n{% for e in service('web') %}server {{ e.id }} {{ e | hostport }}\n"
            "{% endfor %}")
ONE = "# web backends\nserver a 127.0.0.1:8080\n"


def config_file(tmp_path, dests):
    tables = "".join(f'[[template]]\nsrc = "t.j2"\ndest = "{d}"\nwait = "20ms:200ms"\n'
                     'reload_cmd = "true"\n\n' for d in dests)
    (tmp_path / "t.j2").write_text(TEMPLATE)
    cfg = tmp_path / "render.toml"
    cfg.write_text(tables)
    return cfg


def text_or_none(path):
    try:
        return path.read_text()
    except OSError:
        return None


def test_staging_failures_are_one_line_render_goes_on_and_retries(etcd, prefix, tmp_path,
                                                                  consumer, tmpfs):
    gone, read_only = tmp_path / "gone", tmpfs("ro")
    no_inodes = tmpfs("inodes", inodes=4)  # the root, DEST and two fillers: none left
    gone.mkdir()
    dests = [gone / "a.cfg", read_only / "b.cfg", no_inodes / "c.cfg", tmp_path / "d.cfg"]
    render = consumer("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix,
                      "--config", str(config_file(tmp_path, dests)))
    wait_until(lambda: all(text_or_none(d) == "# web backends\n" for d in dests),
               message="first render of all four")
    for i in range(10):
        try:
            (no_inodes / f"filler{i}").write_text("")
        except OSError:
            break
    shutil.rmtree(gone)
    remount(read_only, "ro")
    put_entry(etcd, prefix, "web", "a", 8080)
    wait_until(lambda: text_or_none(dests[3]) == ONE, message="the healthy template rendered")
    failed = wait_until(lambda: len({f["dest"] for f in render.logged(
        "not installed; keeping the last good file")}) == 3 and render.logged(
        "not installed; keeping the last good file"), message="three one-line failures")
    assert {f["dest"] for f in failed} == {str(d) for d in dests[:3]}
    assert all("Traceback" not in e.get("line", "") for e in render.log_events())
    # One line per failure: nothing else about the reload debt that was never incurred.
    assert [e for e in render.log_events() if e.get("level") == "warning"] == []
    assert render.alive()
    assert text_or_none(dests[1]) == text_or_none(dests[2]) == "# web backends\n"

    # Repaired, with no change in the registry: the retry timer installs them.
    gone.mkdir()
    remount(read_only, "rw")
    for filler in no_inodes.glob("filler*"):
        filler.unlink()
    wait_until(lambda: all(text_or_none(d) == ONE for d in dests), timeout=30,
               message="every file installed by the retry timer")
    assert render.alive()


def test_once_with_a_read_only_dest_exits_1_with_one_line(etcd, prefix, tmp_path, tmpfs):
    read_only = tmpfs("ro")
    (read_only / "out.cfg").write_text("last good\n")
    remount(read_only, "ro")
    (tmp_path / "t.j2").write_text(TEMPLATE)
    out = cli("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix, "--template",
              str(tmp_path / "t.j2"), "--dest", str(read_only / "out.cfg"), "--once")
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "not installed; keeping the last good file" in out.stderr
    assert "Read-only file system" in out.stderr


def test_in_place_on_a_full_disk_writes_all_or_nothing(etcd, prefix, tmp_path, tmpfs):
    disk = tmpfs("full", size="256k")
    dest = disk / "out.cfg"
    old = "old line\n" * 1000  # 9 KB
    dest.write_text(old)
    inode = dest.stat().st_ino
    # 64 KB of new content: the staged copy fits, and then DEST has to grow by 55 KB.
    (tmp_path / "big.j2").write_text("{% for i in range(4096) %}server {{ '%06d' % i }} x\n"
                                     "{% endfor %}")
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    (disk / "filler").write_bytes(b"\0" * (free - 96 * 1024))
    out = cli("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix, "--template",
              str(tmp_path / "big.j2"), "--dest", str(dest), "--once", "--in-place")
    new = "".join(f"server {i:06d} x\n" for i in range(4096))
    text = dest.read_text()
    assert text in (old, new), f"DEST half-written: {len(text)} bytes, {out.stderr}"
    assert (out.returncode == 0) == (text == new), out.stderr
    assert dest.stat().st_ino == inode

    # No room even for the staged copy: nothing is touched.
    stat = os.statvfs(disk)
    (disk / "filler2").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - 8192))
    (tmp_path / "big.j2").write_text("{% for i in range(8192) %}y{{ i }}\n{% endfor %}")
    out = cli("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix, "--template",
              str(tmp_path / "big.j2"), "--dest", str(dest), "--once", "--in-place")
    assert out.returncode == 1
    assert dest.read_text() == text


def test_symlinked_dest_file_and_directory_keep_the_link(etcd, prefix, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "file.cfg").write_text("old\n")
    (real / "other.cfg").write_text("old\n")
    file_link = tmp_path / "file-link.cfg"
    file_link.symlink_to("real/file.cfg")  # relative, as operators make them
    dir_link = tmp_path / "dir-link"
    dir_link.symlink_to(real)
    put_entry(etcd, prefix, "web", "a", 8080)
    (tmp_path / "t.j2").write_text(TEMPLATE)
    for dest in (file_link, dir_link / "other.cfg"):
        out = cli("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix,
                  "--template", str(tmp_path / "t.j2"), "--dest", str(dest), "--once",
                  "--mode", "0640")
        assert out.returncode == 0, out.stderr
    assert file_link.is_symlink()
    assert dir_link.is_symlink()
    assert (real / "file.cfg").read_text() == ONE
    assert (real / "other.cfg").read_text() == ONE
    assert (real / "file.cfg").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in real.iterdir()) == ["file.cfg", "other.cfg"]  # no leftovers
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
