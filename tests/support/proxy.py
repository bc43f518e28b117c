"""A loopback TCP proxy the fault tests put between auditwire and the real Elasticsearch.

It forwards bytes untouched, and on demand cuts the cluster away (every connection, open or
new, is reset), holds traffic (connections are accepted and nothing is forwarded until
released: a cluster that does not answer), or answers requests with ``429 Too Many Requests``
for a while, as a busy cluster's coordinating node does. With ``tap=True`` it keeps the bytes it
forwards to the cluster (``forwarded``), for tests of what a client sends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Literal

Mode = Literal["forward", "down", "hold", "busy"]

_BUSY_BODY = (
    b'{"error":{"type":"es_rejected_execution_exception","reason":"rejected execution '
    b'(queue capacity reached) [injected by the test proxy]"},"status":429}'
)


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, tap: bool = False) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._tap = tap
        self.forwarded = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._mode: Mode = "forward"
        self._busy_left = 0
        self.busy_answered = 0
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode, *, busy_requests: int = 0) -> None:
        """Switch mode; open connections are reset so the new mode applies at once."""
        with self._lock:
            self._mode = mode
            self._busy_left = busy_requests
            if mode == "hold":
                self._released.clear()
            else:
                self._released.set()
            sockets = list(self._sockets)
        if mode != "hold":
            for sock in sockets:
                _reset(sock)

    def close(self) -> None:
        self._closed = True
        self._released.set()
        self._listener.close()
        for sock in list(self._sockets):
            _reset(sock)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        mode = self._mode
        if mode == "down":
            _reset(client)
            self._forget(client)
            return
        if mode == "busy":
            self._answer_busy(client)
            return
        if mode == "hold":
            self._released.wait()
            if self._mode != "forward" or self._closed:
                _reset(client)
                self._forget(client)
                return
        self._forward(client, b"")

    def _forward(self, client: socket.socket, already_read: bytes) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
            upstream.sendall(already_read)
        except OSError:
            _reset(client)
            self._forget(client)
            return
        self._track(upstream)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream, keep=self._tap)

    def _pipe(self, source: socket.socket, target: socket.socket, *, keep: bool = False) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if keep:
                    with self._lock:
                        self.forwarded += data
                target.sendall(data)
        except OSError:
            pass
        finally:
            self._forget(source)
            self._forget(target)

    def _answer_busy(self, client: socket.socket) -> None:
        """Answer each request on this connection with 429 while busy requests are left, then
        forward the rest of the connection, starting with the request just read."""
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = client.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(rest) < length:
                    data = client.recv(65536)
                    if not data:
                        return
                    rest += data
                buffer = rest[length:]
                with self._lock:
                    busy = self._busy_left > 0
                    if busy:
                        self._busy_left -= 1
                        self.busy_answered += 1
                    else:
                        self._mode = "forward"
                if not busy:
                    self._forward(client, head + b"\r\n\r\n" + rest)
                    return
                client.sendall(
                    b"HTTP/1.1 429 Too Many Requests\r\n"
                    b"content-type: application/json\r\n"
                    b"x-elastic-product: Elasticsearch\r\n"
                    b"content-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
                )
        except OSError:
            pass
        finally:
            self._forget(client)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (linger 0), as a crashed or unplugged node looks."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
