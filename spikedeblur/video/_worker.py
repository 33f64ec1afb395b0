"""A background thread that feeds or drains a bounded queue, so I/O overlaps the caller's work.

The queue bound keeps memory constant: a producer blocks when ``maxsize`` items wait. Exceptions
raised in the thread are re-raised in the caller's thread at the next ``get`` or ``put``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_POLL_S = 0.1


class WorkerStopped(Exception):
    """Raised inside the worker when the owner asked it to stop early."""


class _End:
    pass


END = _End()


class QueueWorker:
    """Run ``target(worker)`` on a daemon thread; ``target`` talks through ``emit`` or ``receive``."""

    def __init__(self, target: Callable[[QueueWorker], None], *, maxsize: int, name: str) -> None:
        if maxsize < 1:
            raise ValueError(f"queue size must be at least 1, got {maxsize}")
        self._target = target
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._target(self)
        except WorkerStopped:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the owner thread, which re-raises it
            self._error = error
        finally:
            self._put_end()

    def _put_end(self) -> None:
        while True:
            try:
                self._queue.put(END, timeout=_POLL_S)
                return
            except queue.Full:
                if self._stop.is_set():
                    self._discard_queued()

    def _discard_queued(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    # --- producer side: the thread emits items, the owner iterates them ---

    def emit(self, item: Any) -> None:
        """Queue ``item`` for the owner, blocking while the queue is full (called in the thread)."""
        while True:
            if self._stop.is_set():
                raise WorkerStopped
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def next_item(self) -> Any:
        """Return the next emitted item, or ``END`` when the thread finished (called by the owner)."""
        item = self._queue.get()
        if item is END:
            self._thread.join()
            if self._error is not None:
                raise self._error
        return item

    # --- consumer side: the owner puts items, the thread receives them ---

    def put(self, item: Any) -> None:
        """Hand ``item`` to the thread, blocking while the queue is full (called by the owner)."""
        while True:
            self.raise_if_failed()
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def receive(self) -> Any:
        """Return the next item from the owner, or ``END`` after ``finish`` (called in the thread)."""
        while True:
            if self._stop.is_set():
                raise WorkerStopped
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def finish(self) -> None:
        """Tell a consuming thread that no more items come, wait for it and re-raise its error."""
        self.put(END)
        self._thread.join()
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # --- both ---

    def stop(self) -> None:
        """Ask the thread to stop, unblock it and wait for it; queued items are dropped."""
        self._stop.set()
        self._discard_queued()
        if self._thread.is_alive():
            self._thread.join()
        self._discard_queued()
