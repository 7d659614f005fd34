"""Optimisers on one flat parameter vector: SGD, SGD with momentum, Adam.

State is two arrays and a step count, so it fits in a snapshot and a resumed run
continues bit for bit.
"""

from __future__ import annotations

import numpy as np


class Optimizer:
    """Minimise by ``theta -= lr * direction(grad)``.

    Parameters
    ----------
    kind : {"sgd", "momentum", "adam"}
    size : int   length of the parameter vector
    momentum : float   for "momentum" (P24 MNIST: 0.9)

    Attributes
    ----------
    m, v : ndarray (size,)   first / second moment (momentum uses ``m`` as velocity)
    t : int   steps taken
    """

    BETA1, BETA2, EPS = 0.9, 0.999, 1e-8

    def __init__(self, kind: str, size: int, momentum: float = 0.9):
        self.kind = kind
        self.momentum = momentum
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        self.t = 0

    def step(self, theta: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
        """Return the updated copy of ``theta`` (size,)."""
        self.t += 1
        if self.kind == "sgd":
            return theta - lr * grad
        if self.kind == "momentum":
            self.m = self.momentum * self.m + grad
            return theta - lr * self.m
        b1, b2 = self.BETA1, self.BETA2
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return theta - lr * m_hat / (np.sqrt(v_hat) + self.EPS)

    def state(self) -> dict:
        return {"m": self.m.copy(), "v": self.v.copy(), "t": self.t}

    def load(self, m: np.ndarray, v: np.ndarray, t: int) -> None:
        if m.shape != self.m.shape or v.shape != self.v.shape:
            raise ValueError(f"optimiser state: arrays of shape {m.shape} / {v.shape} do not "
                             f"match the network's {self.m.shape}")
        self.m, self.v, self.t = m.astype(float).copy(), v.astype(float).copy(), int(t)
