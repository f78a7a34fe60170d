"""RecordIO framing of Mesos v1 streams: `<byte length>\\n<json>` repeated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def encode(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":")).encode()
    return str(len(body)).encode() + b"\n" + body


class Decoder:
    """Feed it bytes as they arrive; it yields whole records."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return
            length = int(self._buf[:nl])
            end = nl + 1 + length
            if len(self._buf) < end:
                return
            record = json.loads(bytes(self._buf[nl + 1 : end]))
            del self._buf[:end]
            yield record
