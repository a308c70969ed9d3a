"""RQ's no-op job (``rq worker``)."""

from peers import mark_done


def noop() -> None:
    mark_done()
