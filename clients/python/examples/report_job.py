"""A SQL-to-REST gateway's report job, end to end.

The gateway answers ``POST /reports`` at once with a task id and runs the query later: it
enqueues a ``report.sql`` task with a ``callback_url``, a worker runs the SQL and returns the
rows as the task's result, and Rota POSTs the finished task to the gateway's callback endpoint,
signed with the tenant's callback secret. Each customer is a flow-control group, so one
customer's big backlog of reports never holds up another's (at most two at once each).

    ROTA_WEBHOOKS_ALLOW_PRIVATE=true rota serve          # a loopback callback URL needs this
    ROTA_URL=http://127.0.0.1:7070 ROTA_TOKEN=$(cat rota-data/admin-token) \\
        python examples/report_job.py

Here the database is an in-memory SQLite with a sales table, the gateway's callback endpoint a
small local HTTP server; the worker, the enqueue and the signature check are as in production.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

import rota

QUEUE = "reports"


# ---- the worker side: run the SQL, return the rows ---------------------------------------------


def open_database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE sales (customer TEXT, month TEXT, amount INTEGER)")
    db.executemany(
        "INSERT INTO sales VALUES (?, ?, ?)",
        [("acme", "2026-10", 1200), ("acme", "2026-10", 300), ("acme", "2026-11", 900), ("globex", "2026-10", 50)],
    )
    return db


def make_handler(db: sqlite3.Connection) -> Callable[[rota.Job], Dict[str, Any]]:
    lock = threading.Lock()

    def run_report(job: rota.Job) -> Dict[str, Any]:
        sql, params = job.payload["sql"], job.payload.get("params", [])
        if not sql.lstrip().lower().startswith("select"):
            # Retrying will not make it a read: straight to the dead letters.
            raise rota.HandlerError("reports run SELECT statements only", dead=True)
        try:
            with lock:
                cursor = db.execute(sql, params)
                rows = cursor.fetchall()
        except sqlite3.OperationalError as e:
            if "locked" in str(e):
                raise rota.HandlerError("database busy", retry_in_ms=1000, temporary=True) from e
            raise rota.HandlerError(f"query failed: {e}", dead=True) from e
        columns = [c[0] for c in cursor.description]
        return {"columns": columns, "rows": [list(r) for r in rows], "row_count": len(rows)}

    return run_report


# ---- the gateway side: enqueue, and receive the signed result ----------------------------------


def enqueue_report(
    client: rota.Client, customer: str, sql: str, params: List[Any], callback_url: str
) -> rota.EnqueuedTask:
    """One report for one customer. The same report asked for again while it waits is
    debounced into the waiting task (its id stays valid)."""
    return client.enqueue(
        QUEUE,
        "report.sql",
        {"sql": sql, "params": params},
        group=customer,
        unique_key=f"{customer}:{sql}:{json.dumps(params)}",
        on_duplicate="replace",
        callback_url=callback_url,
        max_attempts=5,
    )


class CallbackReceiver:
    """The gateway's ``POST /reports/done``: checks the signature, then keeps the task."""

    def __init__(self, secret: str) -> None:
        self.results: Dict[str, rota.JSON] = {}
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    rota.verify_delivery(
                        secret, url=receiver.url, headers=self.headers, body=body, webhook_id="callbacks"
                    )
                except rota.InvalidSignature:
                    self.send_response(401)
                    self.end_headers()
                    return
                task = json.loads(body)
                receiver.results[task["id"]] = task
                receiver.arrived.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/reports/done"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def callback_secret(client: rota.Client, given: Optional[str]) -> str:
    """The tenant's callback secret: the one given, or a new one (a rotation: the old one
    keeps signing for the grace period, so other receivers keep working meanwhile)."""
    if given:
        return given
    secret = client.rotate_callback_secret().secret
    assert secret is not None
    return secret


def main(client: Optional[rota.Client] = None, secret: Optional[str] = None) -> Dict[str, rota.JSON]:
    client = client or rota.Client()
    client.update_queue(QUEUE, group_concurrency=2)
    receiver = CallbackReceiver(callback_secret(client, secret))
    worker = rota.Worker(client, QUEUE, make_handler(open_database()), concurrency=4, poll_wait=1)
    running = threading.Thread(target=worker.run)
    running.start()
    try:
        task = enqueue_report(
            client,
            "acme",
            "SELECT month, SUM(amount) AS total FROM sales WHERE customer = ? GROUP BY month ORDER BY month",
            ["acme"],
            receiver.url,
        )
        print(f"enqueued report {task.id}; the gateway answers 202 with it")
        done = client.get_task(task.id, wait_ms=30_000)
        print(f"task {done.id} is {done.state}: {done.result}")
        if not receiver.arrived.wait(30):
            raise SystemExit("no callback arrived (is ROTA_WEBHOOKS_ALLOW_PRIVATE=true set on the server?)")
        print(f"signed callback received for {list(receiver.results)}")
        return receiver.results
    finally:
        worker.stop()
        running.join()
        receiver.close()


if __name__ == "__main__":
    main()
