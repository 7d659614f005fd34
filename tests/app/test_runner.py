"""The runner thread: start, pause, step, stop, errors, resets, live changes, concurrency.

Results are compared with the engine's Trainer driven directly (same seed, same steps),
which is the independent reference: the runner must not change what training computes.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from xyprop.app.runner import Runner, _Trainer, confusion_matrix, warm_up
from xyprop.engine import Config, Trainer

pytestmark = pytest.mark.timeout(120)

# XOR on a small lattice: milliseconds per step, never finishes during a test.
CFG = Config(task="xor", arch="lattice", rows=3, cols=3, epochs=100000, seed=3)


def poll(pred, timeout=20.0, dt=0.005):
    """Wait for ``pred()`` with a deadline (never sleep-and-hope)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(dt)
    return False


@pytest.fixture
def runner():
    warm_up()
    r = Runner(CFG)
    yield r
    r.stop()


def reference_w(cfg: Config, n: int, **live_at: dict) -> np.ndarray:
    tr = Trainer(cfg)
    for i in range(n):
        if i in live_at.get("at", {}):
            tr.update_config(**live_at["at"][i])
        tr.step()
    return tr.w


def test_idle_runner_publishes_the_initial_state(runner):
    f = runner.latest()
    assert runner.state == "idle" and f.snapshot.step == 0
    assert np.array_equal(f.snapshot.w, Trainer(CFG).w)
    assert runner.latest(f.counter) is None  # nothing new since


def test_start_publishes_frames_with_increasing_steps(runner):
    assert runner.start()
    seen, last = [], -1
    deadline = time.monotonic() + 20
    while len(seen) < 5 and time.monotonic() < deadline:
        f = runner.latest(last)
        if f is not None:
            last = f.counter
            seen.append((f.counter, f.snapshot.step))
        time.sleep(0.002)
    runner.stop()
    assert len(seen) == 5
    counters, steps = zip(*seen, strict=True)
    assert all(b > a for a, b in zip(counters, counters[1:], strict=False))
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False))
    assert runner.state == "paused"


def test_pause_stops_progress(runner):
    runner.start()
    assert poll(lambda: runner.trainer.step_count >= 3)
    runner.pause()
    assert runner.state == "paused"
    assert runner.wait(lambda: not runner._stepping, 10)  # the step in flight ends
    n = runner.trainer.step_count
    time.sleep(0.5)
    assert runner.trainer.step_count == n
    assert runner.latest().snapshot.step == n
    assert runner.latest().samples_per_s == 0.0


def test_step_once_advances_exactly_one_step(runner):
    assert runner.step_once(wait=True)
    assert runner.trainer.step_count == 1
    # the wait covers the step's frame too: no sleep between the step and latest()
    assert runner.latest().snapshot.step == 1
    assert runner.step_once(wait=True)
    time.sleep(0.2)  # a runaway thread would take more steps here
    assert runner.trainer.step_count == 2
    assert runner.latest().snapshot.step == 2
    assert runner.state == "paused"
    assert np.array_equal(runner.latest().snapshot.w, reference_w(CFG, 2))


def test_stop_joins_the_thread(runner):
    runner.start()
    assert poll(lambda: runner.trainer.step_count >= 2)
    t = runner._thread
    runner.stop()
    assert not t.is_alive() and not runner.alive
    assert runner.state == "paused"
    n = runner.trainer.step_count
    time.sleep(0.2)
    assert runner.trainer.step_count == n


def test_a_failing_step_sets_error_state_and_ends_the_thread(runner, monkeypatch):
    calls = {"n": 0}
    real = _Trainer.step

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise FloatingPointError("EP gradient is not finite (test)")
        return real(self)

    monkeypatch.setattr(_Trainer, "step", flaky)
    runner.start()
    assert poll(lambda: runner.state == "error")
    t = runner._thread
    assert poll(lambda: not t.is_alive())
    assert "FloatingPointError" in runner.error and "not finite" in runner.error
    f = runner.latest()
    assert f.state == "error" and f.error == runner.error
    assert runner.trainer.step_count == 2
    # the session survives: once the cause is gone, training can go on
    monkeypatch.setattr(_Trainer, "step", real)
    assert runner.start()
    assert poll(lambda: runner.trainer.step_count >= 4)
    assert runner.error is None


def test_divergence_from_a_huge_learning_rate_is_reported(runner, monkeypatch):
    def bad_gradient(self, *a, **k):
        raise ValueError("config field 'lr': diverged")

    monkeypatch.setattr(type(runner.trainer.system), "ep_gradient", bad_gradient)
    runner.step_once(wait=True)
    assert runner.state == "error" and "'lr'" in runner.error


def test_reset_same_seed_same_network_new_seed_different(runner):
    w0 = runner.latest().snapshot.w.copy()
    runner.advance(3, wait=True)
    assert not np.array_equal(runner.trainer.w, w0)
    cfg = runner.reset()
    assert cfg.seed == CFG.seed and runner.trainer.step_count == 0
    assert runner.state == "idle"
    assert np.array_equal(runner.latest().snapshot.w, w0)
    cfg = runner.reset(new_seed=True)
    assert cfg.seed != CFG.seed
    assert not np.array_equal(runner.latest().snapshot.w, w0)
    assert np.array_equal(runner.latest().snapshot.w, Trainer(cfg).w)


def test_reset_with_another_geometry(runner):
    runner.reset(CFG.replace(rows=4, cols=5))
    s = runner.latest().snapshot
    # 8-neighbour closed form: 2RC - R - C + 2(R-1)(C-1)
    assert s.shape == (4, 5) and s.src.size == 2 * 4 * 5 - 4 - 5 + 2 * 3 * 4


def test_live_changes_reach_the_trainer_at_the_next_step(runner):
    runner.advance(2, wait=True)
    runner.set_live(lr=0.01, beta=0.05)
    runner.advance(3, wait=True)
    assert runner.trainer.config.lr == 0.01 and runner.trainer.config.beta == 0.05
    assert runner.latest().snapshot.config.lr == 0.01
    ref = reference_w(CFG, 5, at={2: {"lr": 0.01, "beta": 0.05}})
    assert np.array_equal(runner.trainer.w, ref)


def test_live_change_while_running(runner):
    runner.start()
    assert poll(lambda: runner.trainer.step_count >= 2)
    runner.set_live(lr=0.002)
    n = runner.trainer.step_count
    assert poll(lambda: runner.trainer.step_count >= n + 2)
    assert runner.trainer.config.lr == 0.002
    assert runner.latest().snapshot.config.lr == 0.002


def test_invalid_live_changes_are_refused_at_once(runner):
    with pytest.raises(ValueError, match="'lr'"):
        runner.set_live(lr=-1.0)
    with pytest.raises(ValueError, match="rows"):
        runner.set_live(rows=5)
    assert runner.trainer.config.lr == CFG.lr


def test_finished_run_and_more_epochs():
    r = Runner(CFG.replace(epochs=2))
    try:
        r.start()
        assert poll(lambda: r.state == "finished")
        assert r.trainer.epoch == 2 and not r.start()
        r.set_live(epochs=3)
        assert r.state == "paused" and r.start()
        assert poll(lambda: r.state == "finished" and r.trainer.epoch == 3)
    finally:
        r.stop()


def test_confusion_matrix_is_the_trainers_test_evaluation():
    cfg = Config(task="iris", arch="layered", layers=(6,), batch_size=35, epochs=1000, seed=1)
    r = Runner(cfg)
    try:
        assert r.latest().confusion is None
        r.advance(3, wait=True)  # 105 training samples: one epoch
        f = r.latest()
        assert f.snapshot.epoch == 1
        tr = Trainer(cfg)
        for _ in range(3):
            tr.step()
        ev = tr.evaluate("test")
        ref = np.zeros((3, 3), int)
        for t, p in zip(tr.task.y_test, ev.pred, strict=True):
            ref[t, p] += 1
        assert np.array_equal(f.confusion, ref)
        assert f.confusion.sum() == tr.task.y_test.size
    finally:
        r.stop()


def test_confusion_matrix_helper():
    cm = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_loaded_snapshot_continues_like_the_uninterrupted_run(runner):
    runner.advance(4, wait=True)
    snap = runner.latest().snapshot
    runner.advance(3, wait=True)
    w_through = runner.trainer.w.copy()
    other = Runner(Config(task="iris", arch="layered"))
    try:
        cfg = other.load(snap)
        # sessions force serial kernels (thread safety); everything else is the saved config
        assert cfg == CFG.replace(parallel=False) and other.trainer.step_count == 4
        other.advance(3, wait=True)
        assert np.array_equal(other.trainer.w, w_through)
    finally:
        other.stop()


def test_samples_per_second_is_counted_while_running(runner):
    runner.start()
    assert poll(lambda: runner.latest().samples_per_s > 0)
    runner.stop()


def test_two_runners_at_once_match_sequential_runs():
    """Concurrent sessions must not interfere (serial numba kernels, no shared state)."""
    warm_up()
    a = Config(task="xor", arch="lattice", rows=5, cols=5, epochs=100000, seed=1)
    b = Config(task="xor", arch="all-to-all", hidden=6, epochs=100000, seed=2,
               nudging="centered", cost="cosine")
    n = 25
    ref = {k: reference_w(c, n) for k, c in (("a", a), ("b", b))}
    ra, rb = Runner(a), Runner(b)
    try:
        both_alive = threading.Event()

        def watch():
            while not both_alive.is_set():
                sa, sb = ra.trainer.step_count, rb.trainer.step_count
                if 0 < sa < n and 0 < sb < n:
                    both_alive.set()
                if sa >= n and sb >= n:
                    return
                time.sleep(0.001)

        w = threading.Thread(target=watch)
        w.start()
        ra.advance(n)
        rb.advance(n)
        assert ra.wait(lambda: ra.trainer.step_count >= n, 60)
        assert rb.wait(lambda: rb.trainer.step_count >= n, 60)
        w.join()
        assert both_alive.is_set(), "the two runners never trained at the same time"
        assert ra.trainer.config.parallel is False and rb.trainer.config.parallel is False
        assert np.array_equal(ra.trainer.w, ref["a"])
        assert np.array_equal(rb.trainer.w, ref["b"])
    finally:
        ra.stop()
        rb.stop()


def test_warm_up_runs_once():
    warm_up()
    assert warm_up() == 0.0
