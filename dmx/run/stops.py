"""Clean stops: SIGTERM (a scheduler's time limit, ``kill``), SIGINT (Ctrl-C) and, under
submitit, its requeue signal end a run where stopping loses nothing.

While a run trains, a signal only asks for the stop: the step under way finishes, the
run-folder callback (:mod:`dmx.run.callbacks`) saves a checkpoint at that step and raises
:class:`Stop`; the run is marked interrupted and the process exits with 128 + the signal
number, as a shell reports a killed command, so a scheduler or a script never takes it for
finished. The same command continues it exactly. Outside the training loop (reading the
corpus, fine-tuning, writing the encoder) nothing is lost by stopping at once, and
:class:`Stop` is raised from the handler; fine-tuning's cells are kept as each finishes.

A second signal while a stop is pending stops at once: the user insisted.

Under submitit (``hydra/launcher=slurm``) SLURM sends USR2 ``signal_delay_s`` before the
time limit. It is asked for like SIGTERM; once the checkpoint is saved, submitit's own
handler runs: it resubmits the run and exits, and the resubmitted run resumes from that
checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger("dmx")

_Handler = Callable[[int, FrameType | None], Any] | int | None


class Stop(BaseException):  # noqa: N818 - a request, not an error: like KeyboardInterrupt
    """A signal asked the run to stop. A BaseException, as KeyboardInterrupt is, so no
    ``except Exception`` on the way up takes it for a fault (a sweep does not go on to its
    next run)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    def __init__(self) -> None:
        self.reset()

    def reset(self, previous: dict[int, _Handler] | None = None) -> None:
        self.requested: int | None = None  # the first signal received
        self.deferring = False  # inside the training loop: stop at the step's end
        self.previous = previous or {}  # the handlers ours replaced


_state = _State()


def submitit_signal() -> int | None:
    """The signal submitit requeues on, when this process is a submitit job."""
    if "SUBMITIT_EXECUTOR" not in os.environ:
        return None
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, f"SIG{name}", None)


def _signals() -> list[int]:
    extra = submitit_signal()
    return [signal.SIGTERM, signal.SIGINT, *([extra] if extra is not None else [])]


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.requested is not None or not _state.deferring:
        _state.requested = signum
        raise Stop(signum)
    _state.requested = signum
    log.warning(
        "%s received: the run stops after this step and saves a checkpoint; send it again "
        "to stop at once",
        signal.Signals(signum).name,
    )


@contextmanager
def catching() -> Iterator[None]:
    """Our handlers for the block (in the main thread; elsewhere signals cannot be caught
    and the block runs as it would without). On the way out the old handlers come back, and
    a stop by submitit's signal is handed to submitit's handler (which requeues and exits)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in _signals()}
    _state.reset(saved)
    for s in saved:
        signal.signal(s, _handler)
    try:
        yield
    except Stop as stop:
        _restore(saved)
        handoff = saved.get(stop.signum)
        if stop.signum == submitit_signal() and callable(handoff):
            handoff(stop.signum, None)  # submitit: resubmit the run, then exit
        raise
    finally:
        _restore(saved)
        _state.reset()


def _restore(saved: dict[int, _Handler]) -> None:
    for s, handler in saved.items():
        signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def reinstall() -> None:
    """Take SIGTERM back from Lightning, which registers its own handler when fit starts
    (it would end the loop with a SystemExit at a point of its choosing, and under data
    parallelism call a collective from inside the handler). Lightning restores ours when
    fit ends."""
    if _state.previous and threading.current_thread() is threading.main_thread():
        for s in _state.previous:
            signal.signal(s, _handler)


def defer(on: bool) -> None:
    """Inside the training loop a signal waits for the step's end (:func:`pending`)."""
    _state.deferring = on


def pending() -> int | None:
    """The signal that asked for a stop, if one did."""
    return _state.requested


__all__ = ["Stop", "catching", "defer", "pending", "reinstall", "submitit_signal"]
