"""Small tools the tests share: free ports, polling, a background thread runner, a TCP proxy
whose connections a test can cut, and a stand-in token endpoint."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], T], timeout: float = 10.0, every: float = 0.02) -> T:
    """``check()``'s first truthy value; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


class InThread:
    """Runs ``fn`` in a thread and keeps its return value or exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e

    def join(self, timeout: float = 30.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "thread did not finish"
        if self.error is not None:
            raise self.error
        return self.value


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to ``target``; :meth:`cut` closes every open connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self._open: List[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self.connections += 1
                self._open += [down, up]
            threading.Thread(target=self._pipe, args=(down, up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, down), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            socks, self._open = self._open, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.cut()


class DroppingServer:
    """Accepts connections and closes them at once without answering, counting them."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            conn.recv(65536)
            conn.close()

    def close(self) -> None:
        self.listener.close()


class SilentServer:
    """Accepts connections and reads the requests but never answers, counting them."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self._held: List[socket.socket] = []
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self._held:
            conn.close()


class FakeTokenServer:
    """A stand-in for the token endpoint and one API route, to watch a client built with client
    credentials: ``POST /oauth/token`` issues ``t1``, ``t2``... lasting ``expires_in`` seconds
    (after ``token_delay`` seconds), and ``GET /v1/queues`` accepts only the tokens in ``valid``
    (each issued token is added) while ``accepting``, answering 401 otherwise."""

    def __init__(self, expires_in: int = 3600, token_delay: float = 0.0) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs

        self.expires_in = expires_in
        self.token_delay = token_delay
        self.forms: List[Dict[str, str]] = []
        self.bearers: List[str] = []
        self.valid: Set[str] = set()
        self.accepting = True
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                time.sleep(fake.token_delay)
                with fake._lock:
                    fake.forms.append(form)
                    token = f"t{len(fake.forms)}"
                    fake.valid.add(token)
                body = {"access_token": token, "token_type": "Bearer", "expires_in": fake.expires_in, "scope": ""}
                self._answer(200, body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                bearer = self.headers.get("authorization", "").removeprefix("Bearer ")
                with fake._lock:
                    fake.bearers.append(bearer)
                    ok = fake.accepting and bearer in fake.valid
                if ok:
                    self._answer(200, {"queues": []})
                else:
                    self._answer(401, {"error": {"code": "unauthorized", "message": "not a valid token"}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
