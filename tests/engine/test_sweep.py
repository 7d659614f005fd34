"""Sweeps on a real Dask scheduler: rows, resume, error rows, external cluster."""

import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from xyprop.engine import Config, Trainer, load_snapshot
from xyprop.engine.sweep import Sweep, read_results, run_id, run_sweep

SWEEP = {
    "base": {"task": "xor", "arch": "all-to-all", "epochs": 40, "stop_at_accuracy": 1.0},
    "grid": {"hidden": [2, 4], "seed": [0, 1], "lr": [0.05, -1.0]},
    "sweep": {"target_accuracy": 1.0},
}


def _by_key(rows):
    return {(int(r["hidden"]), int(r["seed"]), float(r["lr"])): r for r in rows}


@pytest.fixture(scope="module")
def local_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    rows = run_sweep(Sweep.from_dict(SWEEP), out, workers=2, progress=False)
    return out, rows


def test_grid_gives_expected_rows(local_result):
    out, rows = local_result
    rows = _by_key(read_results(out / "results.csv"))
    assert set(rows) == {(h, s, lr) for h in (2, 4) for s in (0, 1) for lr in (0.05, -1.0)}
    for (hidden, seed, lr), r in rows.items():
        if lr < 0:
            continue
        assert r["status"] == "ok", r["error"]
        # the row reports what a direct, in-process run of the same config gives
        cfg = Config.from_dict({**SWEEP["base"], "hidden": hidden, "seed": seed, "lr": lr})
        tr = Trainer(cfg)
        tr.run()
        ref = tr.summary()
        assert int(r["n_couplings"]) == tr.net.n_edges == ref["n_couplings"]
        assert float(r["train_accuracy"]) == ref["train_accuracy"]
        assert int(r["epochs"]) == ref["epochs"]
        snap = load_snapshot(r["snapshot"])
        assert np.array_equal(snap.w, tr.result().w)
        if ref["train_accuracy"] == 1.0:
            first = next(h["epoch"] for h in tr.history if h["train_accuracy"] >= 1.0)
            assert int(r["epochs_to_target"]) == first


def test_failing_configuration_becomes_error_row(local_result):
    out, _ = local_result
    rows = _by_key(read_results(out / "results.csv"))
    bad = [r for k, r in rows.items() if k[2] < 0]
    assert len(bad) == 4
    for r in bad:
        assert r["status"] == "error"
        assert "lr" in r["error"] and "-1.0" in r["error"]
        assert r["train_accuracy"] == ""


def test_second_run_skips_done_rows(local_result, tmp_path):
    out, _ = local_result
    copy = tmp_path / "again"
    shutil.copytree(out, copy)
    before = (copy / "results.csv").read_text()
    # drop one row: only that run is done again
    lines = before.splitlines()
    (copy / "results.csv").write_text("\n".join(lines[:-1]) + "\n")
    t0 = time.time()
    rows = run_sweep(Sweep.from_dict(SWEEP), copy, workers=1, progress=False)
    assert len(rows) == 8
    assert len({r["run_id"] for r in rows}) == 8
    after = _by_key(read_results(copy / "results.csv"))
    assert _by_key(read_results(out / "results.csv")).keys() == after.keys()
    assert time.time() - t0 < 60


def test_bad_sweep_file_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="hiden"):
        Sweep.from_dict({"base": {}, "grid": {"hiden": [1]}})
    with pytest.raises(ValueError, match="seed"):
        Sweep.from_dict({"grid": {"seed": 3}})
    p = tmp_path / "s.toml"
    p.write_text("[base\n")
    with pytest.raises(ValueError, match="TOML"):
        Sweep.load(p)


def test_cases_run_the_grid_each_with_their_own_fields(tmp_path):
    """[[case]] tables: mixed architectures in one sweep, each run with the whole grid."""
    p = tmp_path / "mixed.toml"
    p.write_text('[base]\ntask = "xor"\nepochs = 5\n[grid]\nseed = [0, 1]\n'
                 '[[case]]\nlabel = "lat"\narch = "lattice"\nrows = 3\ncols = 3\n'
                 '[[case]]\nlabel = "dense"\narch = "all-to-all"\nhidden = 4\n')
    sw = Sweep.load(p)
    assert sw.columns == ["label", "arch", "rows", "cols", "hidden", "seed"]
    runs = sw.runs()
    assert [(r["params"]["label"], r["params"]["seed"]) for r in runs] == [
        ("lat", 0), ("lat", 1), ("dense", 0), ("dense", 1)]
    # the label names a run but is not a config field; other case fields are
    assert runs[0]["config"] == {"task": "xor", "epochs": 5, "arch": "lattice", "rows": 3,
                                 "cols": 3, "seed": 0}
    assert runs[3]["config"]["hidden"] == 4 and "rows" not in runs[3]["config"]
    assert len({r["run_id"] for r in runs}) == 4
    # a varying field named like a result keeps its own column (epochs budget vs trained)
    sw = Sweep.from_dict({"grid": {"epochs": [5, 7]}})
    assert sw.columns == ["config_epochs"]
    assert [r["params"] for r in sw.runs()] == [{"config_epochs": 5}, {"config_epochs": 7}]
    assert [r["config"]["epochs"] for r in sw.runs()] == [5, 7]
    with pytest.raises(ValueError, match="case 2.*hiden"):
        Sweep.from_dict({"case": [{"arch": "lattice"}, {"hiden": 3}]})
    with pytest.raises(ValueError, match="seed.*also in"):
        Sweep.from_dict({"grid": {"seed": [0]}, "case": [{"seed": 1}]})
    with pytest.raises(ValueError, match="'neighbourhood': got 5"):  # checked at load
        Sweep.from_dict({"case": [{"arch": "lattice", "neighbourhood": 5}]})


def test_run_id_is_the_complete_config():
    """Writing a default out keeps a run's id (a pinned file resumes its old rows); a
    different value changes it; two cases with one config are refused."""
    assert run_id({"task": "xor"}) == run_id({"task": "xor", "lr": Config().lr})
    assert run_id({"task": "xor"}) != run_id({"task": "xor", "lr": 0.01})
    assert run_id({"task": "xor"}) == run_id({"task": "xor", "parallel": False})
    assert run_id({"lr": -1.0}) != run_id({"lr": -2.0})  # invalid: hashed as written
    with pytest.raises(ValueError, match="same config"):
        Sweep.from_dict({"case": [{"label": "a", "rows": 4},
                                  {"label": "b", "rows": Config().rows}]})


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_external_scheduler_gives_same_results(local_result, tmp_path):
    out, _ = local_result
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    bindir = shutil.which("dask") and [shutil.which("dask")] or [sys.executable, "-m", "dask"]
    sched = subprocess.Popen([*bindir, "scheduler", "--host", "127.0.0.1", "--port",
                              str(port), "--no-dashboard"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([*bindir, "worker", addr, "--nthreads", "1", "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from dask.distributed import Client

        deadline = time.time() + 60
        while True:
            try:
                with Client(addr, timeout="2s") as c:
                    if c.scheduler_info()["workers"]:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "external dask cluster did not start"
            time.sleep(0.5)
        rows = run_sweep(Sweep.from_dict(SWEEP), tmp_path, scheduler=addr, progress=False)
        ext = _by_key(rows)
        loc = _by_key(read_results(out / "results.csv"))
        assert ext.keys() == loc.keys()
        for k, r in loc.items():
            e = ext[k]
            for col in ("status", "train_accuracy", "epochs", "n_couplings", "train_loss"):
                assert str(e[col] if e[col] is not None else "") == r[col], (k, col)
    finally:
        worker.terminate()
        sched.terminate()
        worker.wait(20)
        sched.wait(20)
