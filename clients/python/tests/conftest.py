"""One real ``rota serve`` for the test session: the binary from ``ROTA_BIN`` (default
``<repo>/target/debug/rota``), on a free loopback port, with a fresh data directory. Tests use
distinct queue names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

import rota

from .helpers import free_port

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Server:
    url: str
    token: str
    data_dir: Path


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    binary = os.environ.get("ROTA_BIN") or str(REPO / "target" / "debug" / "rota")
    if not Path(binary).exists():
        pytest.exit(f"no rota binary at {binary}: build it (cargo build -p rota) or set ROTA_BIN", 2)
    work = Path(tempfile.mkdtemp(prefix="rota-py-"))
    port = free_port()
    env = dict(os.environ, ROTA_LOG="warn", ROTA_WEBHOOKS_ALLOW_PRIVATE="true")
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(work / "data")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rota serve did not start: {(work / 'server.log').read_text()}")
            time.sleep(0.05)
        token = (work / "data" / "admin-token").read_text().strip()
        yield Server(url, token, work / "data")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def client(server: Server) -> Iterator[rota.Client]:
    with rota.Client(server.url, server.token) as c:
        yield c


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue name of this test's own."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:80]
    return f"{name}-{uuid.uuid4().hex[:8]}"
