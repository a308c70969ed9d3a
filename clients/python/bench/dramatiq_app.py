"""Dramatiq's no-op actor (``dramatiq dramatiq_app``)."""

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from peers import QUEUE, REDIS_URL, mark_done

dramatiq.set_broker(RedisBroker(url=REDIS_URL))


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop() -> None:
    mark_done()
