"""The Rota Python worker with a no-op handler: ``python rota_worker.py sync|async N`` with
ROTA_URL and ROTA_TOKEN set; runs until SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import rota

QUEUE = "bench"


def main() -> None:
    mode, concurrency = sys.argv[1], int(sys.argv[2])
    if mode == "sync":
        rota.Worker(rota.Client(), QUEUE, lambda job: None, concurrency=concurrency).run(install_signals=True)
        return

    async def noop(job: rota.Job) -> Any:
        return None

    async def run() -> None:
        async with rota.AsyncClient() as client:
            await rota.AsyncWorker(client, QUEUE, noop, concurrency=concurrency).run(install_signals=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
