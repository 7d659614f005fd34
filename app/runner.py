"""One training thread per browser session, around the engine's :class:`Trainer`.

The runner never trains by itself: its thread only calls ``Trainer.step``,
``Trainer.update_config`` and ``Trainer.snapshot`` (and reads the trainer's own end-of-epoch
test evaluation for the confusion matrix). After every step it puts a :class:`Frame` into a
one-slot mailbox guarded by a lock, with a frame counter that only grows. The page's
periodic callback takes the latest frame if its counter is new: stale frames are dropped
(overwritten), never queued, so a slow page never slows training down.

States: ``idle`` (built, not started), ``running``, ``paused``, ``finished`` (the trainer
is ``done``), ``error`` (a step raised; ``error`` holds the message and the thread has
ended). Any exception in the thread is caught, so a failing session never takes the
server down.

Thread safety: configs are forced to ``parallel=False``, so the numba kernels run serially
(``nogil``) and several sessions training at once never enter numba's parallel
(workqueue) threading layer, which is not thread-safe.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from xyprop.engine import Config, Snapshot, Trainer, load_task

from .settings import LIVE

STATES = ("idle", "running", "paused", "finished", "error")


@dataclass(frozen=True)
class Frame:
    """What the page draws: one snapshot plus runner status.

    Attributes
    ----------
    counter : int   grows by one with every published frame (per runner, across resets)
    snapshot : Snapshot
    state : str   one of STATES when published
    samples_per_s : float   training throughput over the last seconds (0 when not running)
    confusion : ndarray int64 (C, C) or None   test-set confusion matrix at the last epoch
        end (rows true class, columns predicted); None before the first epoch ends
    error : str or None
    """

    counter: int
    snapshot: Snapshot
    state: str
    samples_per_s: float
    confusion: np.ndarray | None
    error: str | None = None


class _Trainer(Trainer):
    """Trainer that keeps its latest test evaluation, so the confusion matrix is free.

    ``Trainer._end_epoch`` evaluates the test split anyway; keeping its result avoids a
    second relaxation of the whole test set per epoch. Training itself is untouched.
    """

    last_test = None

    def evaluate(self, split="test", epoch=None):
        ev = super().evaluate(split, epoch)
        if split == "test":
            self.last_test = ev
        return ev


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class."""
    idx = np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


class Runner:
    """Train one network in a background thread and publish the latest frame.

    Parameters
    ----------
    config : Config   (``parallel`` is forced to False)
    snapshot : Snapshot, optional   resume from this state instead of a fresh network
    rate_window : float   seconds over which samples/s is averaged
    """

    def __init__(self, config: Config | None = None, *, snapshot: Snapshot | None = None,
                 rate_window: float = 2.0):
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._counter = 0
        self._frame: Frame | None = None
        self._window = rate_window
        self._gen = 0  # thread generation; stop() bumps it so an old thread never publishes
        self._stepping = False
        self._build(config or Config(), snapshot)

    # -- construction ----------------------------------------------------------------------
    def _build(self, config: Config, snapshot: Snapshot | None) -> None:
        """New trainer (caller holds no thread: the old one was stopped)."""
        if snapshot is not None:
            tr = _Trainer.from_snapshot(snapshot, parallel=False)
        else:
            tr = _Trainer(config.replace(parallel=False))
        with self._cond:
            self.trainer = tr
            self._stepping = False
            self._budget = 0  # steps still to take; -1 = until paused or done
            self._pending: dict = {}
            self._state = "finished" if tr.done else "idle"
            self._error: str | None = None
            self._rate: deque = deque()
            self._confusion = None
            self._confusion_epoch = -1
            self._update_confusion()
            self._publish(tr.snapshot())

    def reset(self, config: Config | None = None, new_seed: bool = False) -> Config:
        """Stop the thread and start over from a fresh network.

        ``config`` defaults to the current one; the same seed gives the same initial
        network, ``new_seed=True`` draws a new seed. Returns the config now in use.
        """
        self.stop()
        config = config or self.trainer.config
        if new_seed:
            config = config.replace(seed=secrets.randbelow(2**31))
        self._build(config, None)
        return self.trainer.config

    def load(self, snapshot: Snapshot) -> Config:
        """Stop the thread and continue from ``snapshot`` (``Trainer.from_snapshot``)."""
        self.stop()
        self._build(snapshot.config, snapshot)
        return self.trainer.config

    # -- controls (any thread) -------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def config(self) -> Config:
        """The trainer's config with pending live changes applied."""
        with self._cond:
            return self.trainer.config.replace(**self._pending)

    def start(self) -> bool:
        """Train until paused or done. Returns False if there is nothing to do (done)."""
        with self._cond:
            if self._state == "running":
                return True
            if self._done_now():
                self._state = "finished"
                return False
            self._budget = -1
            self._go("running")
        return True

    def pause(self) -> None:
        """Stop after the step in progress (returns at once; the state is ``paused``)."""
        with self._cond:
            self._budget = 0
            if self._state == "running":
                self._state = "paused"
            self._cond.notify_all()

    def step_once(self, wait: bool = False, timeout: float | None = 60.0) -> bool:
        """Take exactly one update (ignored while running). ``wait`` blocks until it is done."""
        return self.advance(1, wait, timeout)

    def advance(self, n: int, wait: bool = False, timeout: float | None = 60.0) -> bool:
        """Take ``n`` more updates in the thread, then pause (ignored while running).

        Returns False if nothing was scheduled (running or done), or on a ``wait`` timeout.
        """
        with self._cond:
            if self._state == "running" or self._done_now():
                return False
            target = self.trainer.step_count + n
            self._budget = max(self._budget, 0) + n
            self._go("paused")
        if wait:
            # step_count moves inside tr.step(), before the step's frame is published: wait
            # for the step to finish too, so latest() then shows the step waited for
            return self.wait(lambda: not self._stepping and (
                self.trainer.step_count >= target or self._budget == 0), timeout)
        return True

    def set_live(self, **changes) -> None:
        """Change live fields (see ``settings.LIVE``); applied before the next step.

        Raises ``ValueError`` at once for a non-live field or an invalid value.
        """
        bad = sorted(set(changes) - set(LIVE))
        if bad:
            raise ValueError(f"cannot change {', '.join(bad)} without a reset; live fields: "
                             f"{', '.join(LIVE)}")
        with self._cond:
            self.trainer.config.replace(**self._pending, **changes)  # validates
            self._pending.update(changes)
            if not self._stepping:  # no step in flight: apply now
                self._apply_pending()
                if self._state == "finished" and not self.trainer.done:
                    self._state = "paused"
                elif self._state in ("idle", "paused") and self.trainer.done:
                    self._state = "finished"

    def stop(self, timeout: float | None = 60.0) -> None:
        """End the thread and wait for it (at most one step)."""
        with self._cond:
            self._gen += 1  # a thread that outlives the timeout exits without publishing
            self._budget = 0
            if self._state == "running":
                self._state = "paused"
            self._cond.notify_all()
            t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def wait(self, predicate, timeout: float | None = 60.0) -> bool:
        """Block until ``predicate()`` holds (checked after each step); False on timeout."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    @property
    def alive(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def latest(self, since: int = -1) -> Frame | None:
        """The newest frame if its counter is greater than ``since``, else None."""
        with self._cond:
            f = self._frame
        if f is None or f.counter <= since:
            return None
        return f

    def samples_per_s(self) -> float:
        with self._cond:
            return self._rate_now()

    # -- internals (called with the condition held) ----------------------------------------
    def _done_now(self) -> bool:
        """Apply pending live changes if no step is in flight; is the trainer done?"""
        if self._stepping:
            return False  # the thread checks ``done`` before its next step
        self._apply_pending()
        return self.trainer.done

    def _apply_pending(self) -> None:
        if self._pending:
            self.trainer.update_config(**self._pending)
            self._pending = {}

    def _go(self, state: str) -> None:
        self._state = state
        self._error = None
        self._rate.clear()  # samples/s counts from this start, not across the pause
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, args=(self._gen,),
                                            name="xyprop-runner", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _publish(self, snap: Snapshot) -> None:
        self._counter += 1
        self._frame = Frame(self._counter, snap, self._state, self._rate_now(),
                            self._confusion, self._error)

    def _rate_now(self) -> float:
        r = self._rate
        if self._state != "running" or len(r) < 2 or r[-1][0] <= r[0][0]:
            return 0.0
        return (r[-1][1] - r[0][1]) / (r[-1][0] - r[0][0])

    def _update_confusion(self) -> None:
        tr = self.trainer
        ev = tr.last_test
        if ev is not None and tr.epoch != self._confusion_epoch:
            n = max(int(tr.task.n_classes), 2)
            self._confusion = confusion_matrix(tr.task.y_test, ev.pred, n)
            self._confusion_epoch = tr.epoch

    # -- the thread ------------------------------------------------------------------------
    def _loop(self, gen: int) -> None:
        tr = self.trainer
        samples = 0
        while True:
            with self._cond:
                while self._budget == 0 and self._gen == gen:
                    self._cond.wait()
                if self._gen != gen:
                    return
                try:
                    self._apply_pending()
                except ValueError as e:  # validated in set_live; kept as a guard
                    self._fail(e)
                    return
                if tr.done:
                    self._budget = 0
                    self._state = "finished"
                    self._publish(tr.snapshot())
                    self._cond.notify_all()
                    continue
                self._stepping = True
            try:
                snap = tr.step()  # the only long call; the lock is not held
            except Exception as e:  # noqa: BLE001 - anything must end up in the page
                with self._cond:
                    self._stepping = False
                    if self._gen == gen:
                        self._fail(e)
                return
            with self._cond:
                self._stepping = False
                if self._gen != gen:
                    return
                samples += snap.batch_index.size // max(tr.config.m_init, 1)
                now = time.perf_counter()
                self._rate.append((now, samples))
                while len(self._rate) > 2 and now - self._rate[0][0] > self._window:
                    self._rate.popleft()
                if self._budget > 0:
                    self._budget -= 1
                if tr.done:
                    self._budget = 0
                    self._state = "finished"
                elif self._budget == 0 and self._state == "running":
                    self._state = "paused"
                self._update_confusion()
                self._publish(snap)
                self._cond.notify_all()

    def _fail(self, e: BaseException) -> None:
        self._state = "error"
        self._budget = 0
        self._error = f"{type(e).__name__}: {e}"
        try:
            self._publish(self.trainer.snapshot())
        except Exception:  # noqa: BLE001 - the message matters more than the picture
            self._frame = Frame(self._counter + 1, self._frame.snapshot, "error", 0.0,
                                self._confusion, self._error)
            self._counter += 1
        self._cond.notify_all()


_warm_lock = threading.Lock()
_warm_done = False


def warm_up() -> float:
    """Compile (or load from numba's cache) every kernel training uses, once per process.

    A tiny XOR 2x2 lattice takes one step with each solver and each nudging (both end an
    epoch, so evaluation runs too); Iris is loaded once so scikit-learn is imported before
    a session needs it. Returns the seconds spent (0 after the first call).
    """
    global _warm_done
    with _warm_lock:
        if _warm_done:
            return 0.0
        t0 = time.perf_counter()
        for solver in ("exact", "gradient-flow"):
            for nudging in ("one-sided", "centered"):
                cfg = Config(task="xor", arch="lattice", rows=2, cols=2, solver=solver,
                             nudging=nudging, epochs=1, parallel=False, max_iter=2000)
                Trainer(cfg).step()
        load_task("iris")
        _warm_done = True
        return time.perf_counter() - t0


def warm_up_async() -> threading.Thread:
    """``warm_up`` in a daemon thread (for ``panel serve`` imports)."""
    t = threading.Thread(target=warm_up, name="xyprop-warm-up", daemon=True)
    t.start()
    return t


__all__ = ["Runner", "Frame", "STATES", "confusion_matrix", "warm_up", "warm_up_async"]
