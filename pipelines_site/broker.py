"""A Celery broker that needs no server: kombu's filesystem transport, made safe
for several processes.

kombu's filesystem transport creates a message file and then writes it, so a
consumer in another process can move and read it while it is still empty; the
JSON error that follows stops the worker ("Unrecoverable error"). Here a message
is written to a temporary name the consumers ignore and renamed into place, which
is atomic on POSIX, and an unreadable message is logged and skipped rather than
fatal. The URL scheme is ``canalfs://``.
"""

from __future__ import annotations

import logging
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger("canal.broker")


class Channel(filesystem.Channel):
    """Atomic writes; tolerant reads."""

    # filesystem.Channel renamed the base Channel's ``message``; kombu passes it by position.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A name without the "<stamp>.<queue>.msg" shape: consumers skip it until the rename.
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.rename(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add a message to {self.data_folder_out!r}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        while True:
            try:
                return super()._get(queue)  # type: ignore[no-untyped-call]  # kombu's, untyped
            except ValueError as exc:  # a corrupt message: drop it, keep consuming
                logger.error("dropped an unreadable broker message on queue %s: %s", queue, exc)


class Transport(filesystem.Transport):
    """kombu filesystem transport with :class:`Channel`."""

    Channel = Channel


TRANSPORT_ALIASES.setdefault("canalfs", "pipelines_site.broker:Transport")
