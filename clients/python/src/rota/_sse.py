"""A Server-Sent Events parser fed one line at a time, shared by both clients' event follow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional


@dataclass
class SseMessage:
    id: Optional[str]
    event: Optional[str]
    data: str


class SseParser:
    """Collects ``id:``, ``event:`` and ``data:`` lines; a blank line ends a message.
    Comment lines (``: keep-alive``) are skipped."""

    def __init__(self) -> None:
        self._id: Optional[str] = None
        self._event: Optional[str] = None
        self._data: List[str] = []

    def feed(self, line: str) -> Optional[SseMessage]:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = None
                return None
            message = SseMessage(self._id, self._event, "\n".join(self._data))
            self._id, self._event, self._data = None, None, []
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        return None
