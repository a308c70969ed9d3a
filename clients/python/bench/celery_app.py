"""Celery's no-op task (``celery -A celery_app worker``)."""

from celery import Celery
from peers import QUEUE, REDIS_URL, mark_done

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_prefetch_multiplier=100,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop() -> None:
    mark_done()
