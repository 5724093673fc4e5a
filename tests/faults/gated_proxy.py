"""A Docker API proxy that can hold one container's inspects until the test lets them go:
dockerd holding a container's lock (tearing down hundreds of ports takes it a minute) made
on demand, and a worker made busy for exactly as long as a test needs."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class GatedDockerProxy:
    def __init__(self, listen: Path, target: str = "/var/run/docker.sock") -> None:
        self.listen, self.target = listen, target
        self.held: set[str] = set()  # container ids whose inspects wait for `gate`
        self.gate = threading.Event()
        self.waiting: list[str] = []  # inspects held right now
        self._lock = threading.Lock()
        listen.unlink(missing_ok=True)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(listen))
        self._server.listen(64)
        self._socks: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.listen}"

    def hold(self, container_id: str) -> None:
        self.gate.clear()
        self.held.add(container_id)

    def release(self) -> None:
        self.held.clear()
        self.gate.set()

    def close(self) -> None:
        self.release()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self._lock:
                self._socks += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        """Request by request (the daemon's requests are bodiless GETs, not pipelined)."""
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                held = next((cid for cid in self.held if cid in line and "/json" in line), None)
                if held is not None:
                    self.waiting.append(held)
                    self.gate.wait(120)
                    self.waiting.remove(held)
                upstream.sendall(head + b"\r\n\r\n")
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
