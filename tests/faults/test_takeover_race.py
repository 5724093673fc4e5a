"""Issue 20 item 14: `--takeover` while the old daemon still runs. Until the old one notices
(its next keepalive, up to ttl/3), a Docker event could make it write a key the new one had
just taken; when it then stopped and its session closed, the key vanished until the new
daemon's next resync."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_support import converged, web
from gated_proxy import GatedDockerProxy
from harness import BUSYBOX_IMAGE, TEST_LABEL, wait_until


def short_path(tmp_path, what):
    """A unix socket path must stay under 108 bytes; pytest's tmp_path can be longer."""
    return Path("/tmp") / f"rg-{what}-{tmp_path.name[-16:]}"  # noqa: S108


@pytest.mark.parametrize("store", ["zookeeper"], indirect=True)
def test_takeover_loses_no_key_the_old_daemon_touched_before_it_noticed(
        start_daemon, containers, docker_client, tmp_path, store):
    proxy = GatedDockerProxy(short_path(tmp_path, "tko"))
    try:
        # A long TTL: the old daemon notices the takeover late (ttl/3); no resync in the new
        # one, so only getting it right at once passes.
        old = start_daemon("--ttl", "30", "--resync", "0", env={"DOCKER_HOST": proxy.url})
        web(containers, "first")
        wait_until(lambda: converged(old, docker_client, containers.ids), message="first")
        late = docker_client.containers.create(
            BUSYBOX_IMAGE, "sleep 3600", ports={"80/tcp": ("127.0.0.1", None)},
            labels={TEST_LABEL: "app", "registrator.name": "late"})
        containers.ids.append(late.id)
        proxy.hold(late.id)  # the old daemon sees the start, and writes it only when let go
        late.start()
        wait_until(lambda: late.id in proxy.waiting, message="the old daemon's look held")
        new = start_daemon("--takeover", "--ttl", "30", "--resync", "0")
        wait_until(lambda: converged(new, docker_client, containers.ids),
                   message="the new daemon to register both")
        lease = int(new.host_record()["lease"], 16)
        proxy.release()  # what the old daemon saw before it knew
        assert old.proc.wait(40) == 1
        assert old.logged("this host name was taken over by another daemon; stopping")
        view = store.view

        def final():  # the old session is closed: what is left is what stays
            entries = new.mine(containers)
            return (converged(new, docker_client, containers.ids)
                    and all(view.lease_of(k) == lease for k in entries))

        wait_until(final, timeout=10, message="every entry on the new daemon's session")
    finally:
        proxy.close()
