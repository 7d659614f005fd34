"""xyprop engine: XY-model networks trained with equilibrium propagation (numpy + numba).

Public API, importable from a notebook::

    from xyprop.engine import Config, Trainer
    tr = Trainer(Config(task="xor", arch="lattice", rows=4, cols=4))
    history = tr.run()

No UI library is imported here or anywhere below.
"""

from .config import CONFIG_FIELDS, DEFAULTS, Config, validate
from .ep import EPResult, Relaxation, System, auto_omega, wrap
from .networks import Network, all_to_all, build_network, lattice, layered, read_edge_file
from .optim import Optimizer
from .snapshot import FORMAT_VERSION, Snapshot, load_snapshot
from .tasks import (
    CLASSIFICATION_TASKS,
    TaskData,
    encode_targets,
    load_mnist,
    load_task,
    mnist_sample_path,
    predict,
)
from .train import METRIC_KEYS, Evaluation, Trainer, metrics_csv

__all__ = [
    "CONFIG_FIELDS", "DEFAULTS", "Config", "validate",
    "EPResult", "Relaxation", "System", "auto_omega", "wrap",
    "Network", "all_to_all", "build_network", "lattice", "layered", "read_edge_file",
    "Optimizer", "FORMAT_VERSION", "Snapshot", "load_snapshot",
    "CLASSIFICATION_TASKS", "TaskData", "encode_targets", "load_mnist", "load_task",
    "mnist_sample_path", "predict",
    "METRIC_KEYS", "Evaluation", "Trainer", "metrics_csv",
]
