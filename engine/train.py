"""Trainer: minibatch EP training with metrics per epoch and a Snapshot after every step.

The one implementation of training: the CLI, the dashboard and the sweeps all drive it.
Randomness comes from one seeded generator (initialisation, epoch order, initial phases);
evaluation draws from generators derived from (seed, epoch), so how often a UI asks for
an evaluation never changes the training stream. Same seed, same run, bit for bit; a run
resumed from a snapshot continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .config import Config
from .ep import EPResult, System
from .networks import Network, build_network
from .optim import Optimizer
from .snapshot import Snapshot
from .tasks import TaskData, load_task, predict

METRIC_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
               "mean_iterations", "failures", "runaways", "seconds", "lr")


@dataclass
class Evaluation:
    """Free-phase evaluation of one split: ``loss``, ``accuracy``, ``phi`` (S, N), ``pred`` (S,)."""

    loss: float
    accuracy: float
    phi: np.ndarray
    pred: np.ndarray
    failures: int


class Trainer:
    """Train one network on one task with EP.

    Parameters
    ----------
    config : Config
    task : TaskData, optional   (loaded from the config if omitted)
    network : Network, optional   (built from the config if omitted)
    """

    def __init__(self, config: Config, *, task: TaskData | None = None,
                 network: Network | None = None):
        self.config = config
        self.task = task or load_task(config.task, seed=config.seed, data_dir=config.data_dir,
                                      train_size=config.train_size, test_size=config.test_size)
        self.net = network or build_network(config, self.task.n_inputs, self.task.n_outputs)
        self.system = self._system(config)
        self.rng = np.random.default_rng(config.seed)
        n, p = self.net.n_nodes, self.net.n_params
        if config.init == "ferro":
            self.w = self.rng.normal(config.ferro_mean(), config.init_scale, p)
        else:  # "glassy": P24's N(0, scale^2)
            self.w = self.rng.normal(0.0, config.init_scale, p)
        self.psi = self.rng.uniform(-np.pi, np.pi, n) * self.net.free
        # bias fields start at one amplitude on every free site, random directions
        self.h = np.full(n, float(config.init_bias)) * self.net.free
        self.opt = Optimizer(config.optimizer, p + 2 * n, config.momentum)
        self.epoch = 0
        self.step_count = 0
        self.step_in_epoch = 0
        self.perm = self.rng.permutation(self.task.x_train.shape[0])
        self.history: list[dict] = []
        self.seconds = 0.0
        self._epoch_stats = self._empty_stats()
        self._last: EPResult | None = None
        self._last_rows = np.zeros(0, dtype=np.int64)
        self._change = np.zeros(self.net.n_edges)
        self.best: Snapshot | None = None
        # XOR tests on its training patterns: evaluate them once per epoch, not twice
        t = self.task
        self._test_is_train = (np.array_equal(t.x_train, t.x_test)
                               and np.array_equal(t.y_train, t.y_test))

    # -- settings --------------------------------------------------------------------------
    def _system(self, c: Config) -> System:
        return System(self.net, cost=c.cost, solver=c.solver, tol=c.tol, max_iter=c.max_iter,
                      omega=c.omega, parallel=c.parallel)

    LIVE_FIELDS = ("lr", "beta", "lr_decay", "momentum", "nudging", "m_init", "batch_size",
                   "epochs", "stop_at_accuracy", "tol", "max_iter", "omega", "solver",
                   "parallel", "cost")

    def update_config(self, **changes) -> None:
        """Change settings that do not alter the network or the data, between steps."""
        bad = sorted(set(changes) - set(self.LIVE_FIELDS))
        if bad:
            raise ValueError(f"cannot change {', '.join(bad)} during a run; these need a "
                             f"reset. Live fields: {', '.join(self.LIVE_FIELDS)}")
        self.config = self.config.replace(**changes)
        self.system = self._system(self.config)

    @property
    def lr(self) -> float:
        return self.config.lr * (1.0 - self.config.lr_decay) ** self.epoch

    @property
    def done(self) -> bool:
        c = self.config
        if self.epoch >= c.epochs:
            return True
        return (c.stop_at_accuracy is not None and bool(self.history)
                and self.history[-1]["train_accuracy"] >= c.stop_at_accuracy)

    # -- training --------------------------------------------------------------------------
    @staticmethod
    def _empty_stats() -> dict:
        return {"iters": 0.0, "steps": 0, "failures": 0, "runaways": 0}

    def step(self) -> Snapshot:
        """One minibatch EP update; ends the epoch (with evaluation) after its last batch."""
        c, t0 = self.config, time.perf_counter()
        n_train = self.task.x_train.shape[0]
        rows = self.perm[self.step_in_epoch:self.step_in_epoch + c.batch_size]
        x, y = self.task.x_train[rows], self.task.targets(self.task.y_train[rows])
        r = self.system.ep_gradient(x, y, self.w, self.h, self.psi, beta=c.beta,
                                    nudging=c.nudging, rng=self.rng, m_init=c.m_init)
        grad = np.concatenate([r.grad_w, r.grad_h if c.train_bias else 0 * r.grad_h,
                               r.grad_psi if c.train_bias else 0 * r.grad_psi])
        if not np.isfinite(grad).all():
            raise FloatingPointError(f"EP gradient is not finite at epoch {self.epoch}, step "
                                     f"{self.step_count}; lower lr or beta")
        theta = self.opt.step(np.concatenate([self.w, self.h, self.psi]), grad, self.lr)
        p, n = self.net.n_params, self.net.n_nodes
        old = self.w
        self.w, self.h, self.psi = theta[:p], theta[p:p + n], theta[p + n:]
        self._change = self.net.expand(self.w - old)
        self._last, self._last_rows = r, np.repeat(rows, c.m_init)
        st = self._epoch_stats
        st["iters"] += r.iters
        st["steps"] += 1
        st["failures"] += r.failures
        st["runaways"] += r.runaways
        self.step_count += 1
        self.step_in_epoch += rows.size
        self.seconds += time.perf_counter() - t0
        if self.step_in_epoch >= n_train:
            self._end_epoch()
        return self.snapshot()

    def _end_epoch(self) -> None:
        t0 = time.perf_counter()
        self.epoch += 1
        tr = self.evaluate("train")
        te = tr if self._test_is_train else self.evaluate("test")  # XOR: one evaluation
        st = self._epoch_stats
        self.seconds += time.perf_counter() - t0
        row = {"epoch": self.epoch, "train_loss": tr.loss, "train_accuracy": tr.accuracy,
               "test_loss": te.loss, "test_accuracy": te.accuracy,
               "mean_iterations": st["iters"] / max(st["steps"], 1),
               "failures": st["failures"] + tr.failures + te.failures,
               "runaways": st["runaways"], "seconds": self.seconds, "lr": self.lr}
        self.history.append(row)
        self._epoch_stats = self._empty_stats()
        self.step_in_epoch = 0
        self.perm = self.rng.permutation(self.task.x_train.shape[0])
        if self.best is None or _better(row, self.best.metrics):
            self.best = self.snapshot()

    def steps(self) -> Iterator[Snapshot]:
        """Yield a Snapshot after every update until ``done``."""
        while not self.done:
            yield self.step()

    def run(self, progress=None) -> list[dict]:
        """Train until ``done``; ``progress(trainer)`` is called after each epoch."""
        epoch = self.epoch
        for _ in self.steps():
            if progress is not None and self.epoch != epoch:
                epoch = self.epoch
                progress(self)
        return self.history

    EVAL_CHUNK = 2000

    @property
    def eval_restarts(self) -> int:
        """Random starts per sample in an evaluation.

        ``eval_restarts = 0`` (auto) gives every evaluation at least 64 relaxations, so a
        four-pattern task like XOR is not judged on one lucky draw of a multistable
        network: 16 starts for XOR, 1 for Iris and larger sets.
        """
        r = self.config.eval_restarts
        return r if r else min(16, -(-64 // self.task.x_train.shape[0]))

    def evaluate(self, split: str = "test", epoch: int | None = None) -> Evaluation:
        """Free relaxation of every sample of ``split`` from seeded random starts.

        Accuracy and loss are averaged over samples x ``eval_restarts`` starts; ``phi``
        and ``pred`` hold the first start of each sample.
        """
        if split == "test" and self._test_is_train:
            split = "train"  # the same patterns: the same evaluation
        x = getattr(self.task, f"x_{split}")
        y = getattr(self.task, f"y_{split}")
        e = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.config.seed, e, 1 if split == "train" else 2])
        m = self.eval_restarts
        w_edge = self.net.expand(self.w)
        yy = np.repeat(y, m)
        # relax in chunks of samples: working memory stays bounded on a 60,000-image
        # split (the generator yields the same stream as one big draw would)
        phis, fails = [], 0
        for a in range(0, x.shape[0], self.EVAL_CHUNK):
            start = self.system.initial_phases(x[a:a + self.EVAL_CHUNK], rng, m)
            rel = self.system.relax(start, w_edge, self.h, self.psi)
            phis.append(rel.phi)
            fails += int((rel.status != 0).sum())
        phi = np.concatenate(phis)
        pred = predict(phi[:, self.net.output_nodes])
        loss = float(self.system.cost_of(phi, self.task.targets(yy)).mean())
        return Evaluation(loss, float((pred == yy).mean()), phi[::m], pred[::m], fails)

    def result(self) -> Snapshot:
        """The snapshot a finished run reports: the best one seen when training stops at a
        target accuracy, else the current state."""
        if self.config.stop_at_accuracy is not None and self.best is not None:
            return self.best
        return self.snapshot()

    def summary(self, result: Snapshot | None = None) -> dict:
        """Final metrics of a run, the keys shared by ``xyprop train --json`` and sweeps.

        ``epochs``, ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``
        (of ``result``, default ``self.result()``), ``n_couplings``, ``n_parameters``,
        ``seconds``, ``epochs_run``, ``failures``, ``runaways``, ``stopped_early``.
        """
        result = result or self.result()
        m = result.metrics
        return {
            "epochs": result.epoch, "train_loss": _finite(m.get("train_loss")),
            "train_accuracy": m.get("train_accuracy"), "test_loss": _finite(m.get("test_loss")),
            "test_accuracy": m.get("test_accuracy"), "n_couplings": self.net.n_edges,
            "n_parameters": self.n_parameters, "seconds": self.seconds,
            "epochs_run": self.epoch, "failures": sum(h["failures"] for h in self.history),
            "runaways": sum(h["runaways"] for h in self.history),
            "stopped_early": self.epoch < self.config.epochs,
        }

    @property
    def n_parameters(self) -> int:
        """Trainable parameters: shared couplings, plus h and psi per free site if trained."""
        extra = 2 * int(self.net.free.sum()) if self.config.train_bias else 0
        return self.net.n_params + extra

    # -- snapshots -------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """A copy of the current state (safe to hand to another thread)."""
        r, net = self._last, self.net
        n_out = net.output_nodes.size
        empty = np.zeros((0, net.n_nodes))
        return Snapshot(
            config=self.config, epoch=self.epoch, step=self.step_count,
            step_in_epoch=self.step_in_epoch, opt_t=self.opt.t,
            rng_state=_jsonable(self.rng.bit_generator.state),
            history=[dict(h) for h in self.history],
            src=net.src.copy(), dst=net.dst.copy(), param_index=net.param_index.copy(),
            coupling=net.expand(self.w), coupling_change=self._change.copy(),
            w=self.w.copy(), h=self.h.copy(), psi=self.psi.copy(),
            response=r.response.copy() if r else np.zeros(net.n_nodes),
            input_nodes=net.input_nodes.copy(), output_nodes=net.output_nodes.copy(),
            coords=net.coords.copy(), layer=net.layer.copy(),
            opt_m=self.opt.m.copy(), opt_v=self.opt.v.copy(),
            free_phases=r.phi0.copy() if r else empty,
            nudged_phases=r.phib.copy() if r else empty,
            batch_index=self._last_rows.copy(),
            batch_targets=(self.task.targets(self.task.y_train[self._last_rows])
                           if r else np.zeros((0, n_out))),
            perm=self.perm.copy(), kind=net.kind, shape=net.shape,
            info={"n_nodes": net.n_nodes, "n_couplings": net.n_edges,
                  "n_parameters": self.n_parameters,
                  "seconds": self.seconds, "mean_iterations": r.iters if r else 0.0,
                  "loss": r.loss if r else None,
                  # the running sums of the unfinished epoch, so a resumed run reports
                  # the same epoch metrics as an uninterrupted one
                  "epoch_stats": dict(self._epoch_stats)},
        )

    @classmethod
    def from_snapshot(cls, snap: Snapshot, *, task: TaskData | None = None,
                      **changes) -> Trainer:
        """Rebuild a trainer that continues exactly where ``snap`` was taken.

        ``changes`` may set live fields (for example ``epochs`` to train further).
        """
        cfg = snap.config.replace(**changes) if changes else snap.config
        tr = cls(cfg, task=task)
        if tr.net.n_edges != snap.src.size or not (
                np.array_equal(tr.net.src, snap.src) and np.array_equal(tr.net.dst, snap.dst)):
            raise ValueError("snapshot: its edges do not match the network its config builds")
        if tr.net.n_nodes != snap.h.size or tr.net.n_params != snap.w.size:
            raise ValueError("snapshot: node or parameter count does not match its config")
        tr.w, tr.h, tr.psi = snap.w.copy(), snap.h.copy(), snap.psi.copy()
        tr.opt.load(snap.opt_m, snap.opt_v, snap.opt_t)
        tr.epoch, tr.step_count, tr.step_in_epoch = snap.epoch, snap.step, snap.step_in_epoch
        tr.history = [dict(h) for h in snap.history]
        tr.seconds = float(snap.info.get("seconds", 0.0))
        tr.perm = snap.perm.astype(np.int64).copy()
        if tr.perm.size != tr.task.x_train.shape[0]:
            raise ValueError("snapshot: its sample order does not match the task's training set")
        tr.rng.bit_generator.state = snap.rng_state
        tr._change = snap.coupling_change.copy()
        tr._epoch_stats = {**tr._empty_stats(), **snap.info.get("epoch_stats", {})}
        return tr


def metrics_csv(history: list[dict]) -> str:
    """The metrics history as CSV text: a header of ``METRIC_KEYS``, one row per epoch."""
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=list(METRIC_KEYS), extrasaction="ignore",
                        lineterminator="\n")
    wr.writeheader()
    wr.writerows(history)
    return buf.getvalue()


def _finite(x):
    """JSON has no NaN/inf: report them as None."""
    return None if x is None or not np.isfinite(x) else float(x)


def _better(row: dict, best: dict) -> bool:
    """Higher train accuracy wins; ties go to the lower train loss."""
    if not best:
        return True
    return (row["train_accuracy"], -row["train_loss"]) > (best["train_accuracy"],
                                                          -best["train_loss"])


def _jsonable(state):
    if isinstance(state, dict):
        return {k: _jsonable(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        return state.tolist()
    if isinstance(state, np.integer):
        return int(state)
    return state
