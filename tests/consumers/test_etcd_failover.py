"""Issue 20 item 4: consumers started while no etcd member answers must still fail over to
another member later, when the member they talk to dies and the cluster keeps quorum."""

from __future__ import annotations

import pytest
from consumer_support import put_entry
from etcd_cluster import Cluster
from harness import wait_until

from registrator.settings import store_settings
from registrator.stores.etcd import EtcdStore

TEMPLATE = "{% for e in service('web') %}server {{ e.id }} {{ e | hostport }}\n{% endfor %}"


@pytest.mark.slow
def test_watch_and_render_started_in_an_outage_fail_over_later(docker_client, consumer,
                                                               tmp_path):
    cluster = Cluster(docker_client, start=False)  # its ports are chosen; nothing answers
    try:
        flags = ("--etcd-endpoints", cluster.endpoint, "--etcd-timeout", "1s",
                 "--prefix", "/f", "--log-level", "info")
        src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
        src.write_text(TEMPLATE)
        watch = consumer("watch", *flags, "--json")
        render = consumer("render", *flags, "--template", str(src), "--dest", str(dest))
        wait_until(lambda: watch.logged("store unreachable; retrying with backoff")
                   and render.logged("store unreachable; retrying with backoff"),
                   message="both to find no store at start")
        cluster.start()
        wait_until(lambda: watch.logged("watching the registry")
                   and render.logged("watching the registry"), timeout=30,
                   message="both to watch once the cluster is up")
        # Each member dies in turn (two of three keep quorum): whichever one a consumer
        # talks to, it dies once while the consumer talks to it.
        for i, name in enumerate(cluster.names):
            cluster.stop_node(name)
            key = f"/f/services/web/n{i}"
            wait_until(lambda i=i: put_entry(cluster, "/f", "web", f"n{i}", 1000 + i),
                       timeout=20, message="a write through a member that is up")
            wait_until(lambda key=key: key in [x["key"] for x in watch.json_lines()],
                       timeout=15, message=f"the watch to see {key} with {name} down")
            wait_until(lambda i=i: f"server n{i} 127.0.0.1:{1000 + i}\n" in dest.read_text(),
                       timeout=15, message=f"render to write n{i} with {name} down")
            cluster.start_node(name)
        assert watch.alive()
        assert render.alive()
    finally:
        cluster.destroy()


def test_a_slow_caller_moves_to_another_member_when_its_own_dies(docker_client):
    """The client goes back to a failed endpoint once its retry time (0.25 s) has passed: a
    caller slower than that (the daemon's keepalive retries every second) stayed on a dead
    member for as long as it was down. Each failed call must send the next elsewhere."""
    cluster = Cluster(docker_client)
    settings = store_settings(etcd_endpoints=cluster.endpoint, etcd_cacert=None,
                              etcd_cert=None, etcd_key=None, etcd_user=None,
                              etcd_password_file=None, etcd_timeout="1s", etcd_password=None)
    store = EtcdStore(settings)
    try:
        lease = store.grant_lease(30)
        used = store.client._current_endpoint_label  # noqa: SLF001 - which member it talks to
        cluster.stop_node(cluster.names[cluster.ports.index(int(used.rsplit(":", 1)[1]))])
        # wait_until retries every 0.5 s and takes an exception as "not yet": a slow caller.
        assert wait_until(lambda: store.refresh_lease(lease), timeout=10, interval=0.5,
                          message="a keepalive through another member") > 0
    finally:
        store.close()
        cluster.destroy()
