"""Shared fixtures. Keep this file small: helpers used by one test file live in that file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# tests/reference.py (the slow oracles) must import as ``reference`` whatever the import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from xyprop.engine import Network, lattice  # noqa: E402


@pytest.fixture
def tiny_lattice() -> Network:
    """3x3 four-neighbour lattice: 2 inputs on row 0, 1 output on row 2 (XOR-shaped)."""
    return lattice(3, 3, 2, 1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
