"""Blocking calls (card, camera, seal, export, reading scripts) in thread workers, with the
result handled on the UI thread only once the worker has finished.

Why not ``call_from_thread`` at the end of the work: that runs the UI's result handler while
the worker is still RUNNING (its thread is blocked in the call). A handler that replaces the
widget or screen that owns the worker (the card panel giving way to "share written", the
last share closing the collection screen) makes Textual cancel the owner's workers on
unmount, and whether the thread had returned by then is chance: the worker ended CANCELLED
on a loaded machine, and anything waiting on it got ``WorkerCancelled``. Here the handler
runs from the worker's own ``SUCCESS`` state change, so the worker is done before the UI
moves on, every time.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from textual.worker import Worker, WorkerState

T = TypeVar("T")


class ThreadWork:
    """Mixin for a widget or screen: :meth:`run_in_thread` runs ``work`` in a thread worker
    and calls ``done(result)`` on the UI thread after the worker has reached ``SUCCESS``.

    ``work`` should catch what it can report and return it: an exception escaping it is a
    bug and ends the app (Textual's ``exit_on_error``), as for any worker. If the owner is
    removed while the work runs (the app closing), ``done`` is not called.
    """

    def run_in_thread(
        self,
        work: Callable[[], T],
        done: Callable[[T], None],
        *,
        group: str,
        name: str,
        exclusive: bool = True,
    ) -> Worker[T]:
        pending: dict[Worker[Any], Callable[[Any], None]] = self.__dict__.setdefault("_thread_done", {})
        worker: Worker[T] = self.run_worker(  # type: ignore[attr-defined]
            work, thread=True, group=group, exclusive=exclusive, name=name
        )
        pending[worker] = done
        return worker

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        pending: dict[Worker[Any], Callable[[Any], None]] = self.__dict__.get("_thread_done", {})
        if event.worker not in pending:
            return
        event.stop()
        if event.state == WorkerState.SUCCESS:
            pending.pop(event.worker)(event.worker.result)
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            pending.pop(event.worker, None)


    def run_async(
        self,
        work: Coroutine[Any, Any, T],
        done: Callable[[T], None],
        *,
        group: str,
        name: str,
        exclusive: bool = True,
    ) -> Worker[T]:
        """:meth:`run_in_thread` for a coroutine (e.g. one that suspends the app while the
        keyholder owns the terminal): ``done(result)`` runs on the UI thread once the
        worker has reached ``SUCCESS``."""
        pending: dict[Worker[Any], Callable[[Any], None]] = self.__dict__.setdefault("_thread_done", {})
        worker: Worker[T] = self.run_worker(  # type: ignore[attr-defined]
            work, group=group, exclusive=exclusive, name=name
        )
        pending[worker] = done
        return worker
