"""A three-node etcd cluster from the local image, for the failover tests of the daemon
(tests/faults) and the consumers (tests/consumers): its client ports are fixed on 127.0.0.1
before it starts, so a client may be started while no member exists yet, and a restarted
member keeps its address."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from harness import ETCD_IMAGE, TEST_LABEL, EtcdView, free_port, wait_until


class Cluster:
    """Three etcd nodes on a network of their own. `start=False`: the ports are chosen, and
    nothing answers on them until start()."""

    def __init__(self, client: Any, *, start: bool = True) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.client = client
        self.names = [f"etcd{i}-{self.tag}" for i in range(3)]
        self.ports = [free_port() for _ in self.names]
        self.endpoint = ",".join(f"http://127.0.0.1:{p}" for p in self.ports)
        self.net: Any = None
        self.nodes: dict[str, Any] = {}
        self.views: dict[str, EtcdView] = {}
        if start:
            self.start()

    def start(self) -> Cluster:
        self.net = self.client.networks.create(f"etcd-{self.tag}")
        peers = ",".join(f"{n}=http://{n}:2380" for n in self.names)
        for name, port in zip(self.names, self.ports, strict=True):
            self.nodes[name] = self.client.containers.run(
                ETCD_IMAGE, detach=True, name=name, network=self.net.name,
                ports={"2379/tcp": ("127.0.0.1", port)},
                labels={TEST_LABEL: "etcd", "registrator.enable": "false"},
                command=[f"--name={name}", "--data-dir=/tmp/etcd",
                         "--listen-peer-urls=http://0.0.0.0:2380",
                         f"--initial-advertise-peer-urls=http://{name}:2380",
                         "--listen-client-urls=http://0.0.0.0:2379",
                         f"--advertise-client-urls=http://127.0.0.1:{port}",
                         f"--initial-cluster={peers}", f"--initial-cluster-token={self.tag}",
                         "--initial-cluster-state=new"])
        self.views = {n: EtcdView(p) for n, p in zip(self.names, self.ports, strict=True)}
        for view in self.views.values():
            wait_until(view.healthy, timeout=60, message="the cluster to form")
        self.view = self.views[self.names[0]]
        return self

    def leader(self) -> str:
        for name, view in self.views.items():
            with contextlib.suppress(Exception):  # a stopped node does not answer
                status = view.client.status()
                members = {m.id: m.name for m in view.client.members}
                return members[status.leader.id] if status.leader else name
        raise AssertionError("no node answers")

    def use_view_of(self, name: str) -> None:
        self.view = self.views[name]

    def stop_node(self, name: str) -> None:
        """Stop one member (killed: its connections end at once); the view moves to one
        that answers."""
        self.nodes[name].kill()
        self.view = self.views[next(n for n in self.names if n != name)]

    def start_node(self, name: str) -> None:
        """Start a stopped member again (same data) and wait until it answers."""
        self.nodes[name].start()
        wait_until(self.views[name].healthy, timeout=60, message=f"{name} back")

    def destroy(self) -> None:
        for view in self.views.values():
            view.close()
        for node in self.nodes.values():
            node.remove(force=True)
        if self.net is not None:
            self.net.remove()
