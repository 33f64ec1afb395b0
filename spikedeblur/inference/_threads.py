"""Background threads with bounded queues: one produces inputs ahead of the model, one drains outputs.

Both stop promptly when the consumer fails or is interrupted, and both re-raise a worker's error in
the calling thread, so a failure in decoding, spike reading or encoding is never swallowed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")

# How long a blocked put or get waits before it checks the stop flag again, in seconds.
_POLL_S = 0.1


class _EndOfStream:
    pass


class _WorkerFailed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = _EndOfStream()


class BackgroundIterator(Generic[Item]):
    """Iterate ``source`` in a daemon thread, keeping at most ``max_pending`` items ready.

    Use as a context manager; leaving the block stops the thread even when iteration ended early.
    """

    def __init__(self, source: Iterable[Item], *, max_pending: int, name: str) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self._source = source
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    def __enter__(self) -> BackgroundIterator[Item]:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_WorkerFailed(error))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[Item]:
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError(f"background thread {self._thread.name} stopped without a result") from None
                continue
            if item is _END:
                return
            if isinstance(item, _WorkerFailed):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the worker and wait for it; pending items are dropped."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():
            logger.debug("background thread %s is still blocked in its source; leaving it as a daemon", self._thread.name)


class BackgroundConsumer(Generic[Item]):
    """Call ``consume(item)`` for each submitted item in a daemon thread, at most ``max_pending`` queued.

    :meth:`submit` and :meth:`finish` re-raise the first error the worker hit. :meth:`abort` stops
    the worker without processing what is still queued.
    """

    def __init__(self, consume: Callable[[Item], None], *, max_pending: int, name: str) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            try:
                self._consume(item)
            except BaseException as error:  # noqa: BLE001 - re-raised in the submitting thread
                self._error = error
                return

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, item: Item) -> None:
        """Queue ``item``, blocking while the queue is full."""
        while True:
            self._raise_worker_error()
            if not self._thread.is_alive():
                raise RuntimeError(f"background thread {self._thread.name} stopped unexpectedly")
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Process everything queued, stop the worker and re-raise its error, if any."""
        while self._thread.is_alive():
            try:
                self._queue.put(_END, timeout=_POLL_S)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise_worker_error()

    def abort(self) -> None:
        """Stop the worker without processing the queued items."""
        self._stop.set()
        self._thread.join(timeout=5.0)
