"""Tests for the ``xyprop`` command line (xyprop.app.cli), mostly in-process via ``main``."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import types
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from cli_run import run, run_json  # noqa: E402

from xyprop.app.cli import TASK_DIMS
from xyprop.app.cli_args import flag
from xyprop.engine import DEFAULTS, Config, System, Trainer, load_snapshot, load_task
from xyprop.engine.gradcheck import cosine, relative_error

LATTICE3 = ["--task", "xor", "--arch", "lattice", "--rows", "3", "--cols", "3",
            "--neighbourhood", "4"]




def xyprop_exe() -> list[str]:
    """The installed console script (next to this python, else on PATH)."""
    exe = Path(sys.executable).with_name("xyprop")
    found = str(exe) if exe.exists() else shutil.which("xyprop")
    assert found, "the xyprop console script is not installed (pip install -e .)"
    return [found]


def read_metrics(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# -- train ---------------------------------------------------------------------------------
def test_train_xor_all_to_all_to_full_accuracy_in_a_subprocess(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [*xyprop_exe(), "train", "--task", "xor", "--arch", "all-to-all", "--hidden", "5",
         "--epochs", "300", "--stop-at-accuracy", "1", "--json", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    res = json.loads(proc.stdout)
    assert res["train_accuracy"] == 1.0
    assert res["n_couplings"] == 2 * 6 + 6 * 5 // 2  # inputs x free + free pairs
    assert res["epochs"] < 300 and res["stopped_early"]
    for name in ("snapshot.npz", "metrics.csv", "config.toml"):
        assert (out / name).is_file(), name
    snap = load_snapshot(out / "snapshot.npz")
    rows = read_metrics(out / "metrics.csv")
    assert snap.epoch == len(rows) == res["epochs"]
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    assert float(rows[-1]["train_accuracy"]) == 1.0
    assert snap.metrics["train_accuracy"] == 1.0
    assert Config.load(out / "config.toml") == snap.config
    # stopped at the best epoch, so there is no separate end state
    assert not (out / "last.npz").exists()


def test_stop_at_accuracy_saves_the_best_epoch(tmp_path, capsys):
    out = tmp_path / "run"
    res = run_json(capsys, "train", *LATTICE3, "--epochs", "12", "--stop-at-accuracy", "1",
                   "--out", out, "--json")
    rows = read_metrics(out / "metrics.csv")
    assert len(rows) == res["epochs_run"]
    snap = load_snapshot(out / "snapshot.npz")
    # best = highest train accuracy, ties to the lowest train loss
    best = max(rows, key=lambda r: (float(r["train_accuracy"]), -float(r["train_loss"])))
    assert snap.epoch == int(best["epoch"]) == res["epochs"]
    assert snap.metrics["train_accuracy"] == float(best["train_accuracy"]) \
        == res["train_accuracy"]
    # when the best epoch is not the last, the end state is kept for --resume
    assert (out / "last.npz").exists() == (snap.epoch != len(rows))
    if snap.epoch != len(rows):
        assert load_snapshot(out / "last.npz").epoch == len(rows)


def test_resume_continues_bit_for_bit(tmp_path, capsys):
    common = [*LATTICE3, "--batch-size", "2", "--optimizer", "momentum", "--json"]
    run_json(capsys, "train", *common, "--epochs", "4", "--out", tmp_path / "a")
    res_b = run_json(capsys, "train", "--resume", tmp_path / "a" / "snapshot.npz",
                     "--epochs", "9", "--json", "--out", tmp_path / "b")
    res_c = run_json(capsys, "train", *common, "--epochs", "9", "--out", tmp_path / "c")
    b = load_snapshot(tmp_path / "b" / "snapshot.npz")
    c = load_snapshot(tmp_path / "c" / "snapshot.npz")
    assert b.epoch == c.epoch == 9 and res_b["epochs"] == 9
    for k in ("w", "h", "psi", "opt_m", "free_phases"):
        assert np.array_equal(getattr(b, k), getattr(c, k)), k
    rb, rc = read_metrics(tmp_path / "b" / "metrics.csv"), read_metrics(tmp_path / "c" /
                                                                      "metrics.csv")
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rb] == \
        [{k: v for k, v in r.items() if k not in drop} for r in rc]
    assert res_b["train_loss"] == res_c["train_loss"]
    # a live change on resume takes effect
    run_json(capsys, "train", "--resume", tmp_path / "a" / "snapshot.npz", "--epochs", "9",
             "--lr", "0.2", "--json", "--out", tmp_path / "d")
    d = load_snapshot(tmp_path / "d" / "snapshot.npz")
    assert d.config.lr == 0.2 and not np.array_equal(d.w, c.w)


def test_ctrl_c_stops_between_steps_and_the_run_resumes_exactly(tmp_path, capsys,
                                                                monkeypatch):
    common = [*LATTICE3, "--batch-size", "1", "--json"]  # 4 steps per epoch
    run_json(capsys, "train", *common, "--epochs", "5", "--out", tmp_path / "full")
    step, calls = Trainer.step, []

    def step_then_ctrl_c(self):
        snap = step(self)
        calls.append(1)
        if len(calls) == 6:  # in the middle of epoch 2
            os.kill(os.getpid(), signal.SIGINT)
        return snap

    monkeypatch.setattr(Trainer, "step", step_then_ctrl_c)
    status, out, err = run(capsys, "train", *common, "--epochs", "5", "--out", tmp_path / "a")
    monkeypatch.setattr(Trainer, "step", step)
    assert status == 130 and json.loads(out)["interrupted"] and "stopping" in err
    a = load_snapshot(tmp_path / "a" / "snapshot.npz")
    assert (a.epoch, a.step, a.step_in_epoch) == (1, 6, 2)
    assert len(read_metrics(tmp_path / "a" / "metrics.csv")) == 1
    run_json(capsys, "train", "--resume", tmp_path / "a" / "snapshot.npz", "--json",
             "--out", tmp_path / "b")
    b = load_snapshot(tmp_path / "b" / "snapshot.npz")
    full = load_snapshot(tmp_path / "full" / "snapshot.npz")
    assert b.epoch == 5 and np.array_equal(b.w, full.w) and np.array_equal(b.psi, full.psi)


def test_evaluate_reproduces_the_training_metrics(tmp_path, capsys):
    run_json(capsys, "train", *LATTICE3, "--epochs", "3", "--out", tmp_path, "--json")
    res = run_json(capsys, "evaluate", tmp_path / "snapshot.npz", "--json")
    last = read_metrics(tmp_path / "metrics.csv")[-1]
    assert res["epochs"] == 3 and res["n_couplings"] == 12
    for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        assert res[k] == pytest.approx(float(last[k]), rel=1e-12), k
    status, out, _ = run(capsys, "evaluate", tmp_path / "snapshot.npz")
    assert status == 0 and "epoch 3" in out and "accuracy" in out


# -- info ----------------------------------------------------------------------------------
@pytest.mark.parametrize("R, C", [(4, 5), (2, 2), (7, 3)])
def test_info_lattice_edge_counts_match_closed_forms(capsys, R, C):
    d8 = run_json(capsys, "info", "--arch", "lattice", "--rows", R, "--cols", C,
                  "--neighbourhood", "8", "--json")
    assert d8["n_couplings"] == 2 * R * C - R - C + 2 * (R - 1) * (C - 1)
    d4 = run_json(capsys, "info", "--arch", "lattice", "--rows", R, "--cols", C,
                  "--neighbourhood", "4", "--json")
    assert d4["n_couplings"] == 2 * R * C - R - C
    assert d8["n_nodes"] == R * C
    n_free = R * C - 2  # XOR: two clamped inputs
    assert d4["n_parameters"] == d4["n_couplings"] + 2 * n_free
    nb = run_json(capsys, "info", "--rows", R, "--cols", C, "--no-train-bias", "--json")
    assert nb["n_parameters"] == d8["n_couplings"]  # 8 neighbours by default


def test_info_other_architectures(capsys):
    d = run_json(capsys, "info", "--task", "iris", "--arch", "layered", "--layers", "20,10",
                 "--json")
    assert d["n_couplings"] == 4 * 20 + 20 * 10 + 10 * 3 and d["n_nodes"] == 37
    d = run_json(capsys, "info", "--task", "digits", "--arch", "all-to-all", "--hidden",
                 "11", "--json")
    f = 11 + 10
    assert d["n_couplings"] == f * (f - 1) // 2 + 64 * f
    status, out, _ = run(capsys, "info", "--rows", "3", "--cols", "3")
    assert status == 0 and re.search(r"n_couplings\s+20\b", out), out  # 12 + 8 diagonals


def test_task_dims_match_the_loaded_tasks():
    for name in ("xor", "iris", "digits"):
        t = load_task(name)
        assert TASK_DIMS[name] == (t.n_inputs, t.n_outputs), name


# -- flags and config files ----------------------------------------------------------------
def _argv_for(values: dict) -> list[str]:
    argv = []
    for k, v in values.items():
        if isinstance(v, bool):
            argv.append(flag(k) if v else "--no-" + flag(k)[2:])
        elif isinstance(v, tuple):
            argv += [flag(k), ",".join(map(str, v))]
        elif v is not None:
            argv += [flag(k), str(v)]
    return argv


def test_every_config_field_has_a_flag(capsys):
    status, out, _ = run(capsys, "train", "--help")
    assert status == 0
    for f in fields(Config):
        assert flag(f.name) in out, f.name
    assert "--no-parallel" in out and "--no-train-bias" in out
    # every flag parses its own default back to the default config
    from xyprop.app.cli import build_parser
    from xyprop.app.cli_args import build_config

    ns = build_parser().parse_args(["info", *_argv_for(DEFAULTS)])
    assert build_config(ns) == Config()
    changed = {"task": "iris", "arch": "layered", "layers": (7, 5), "lr": 0.01,
               "parallel": True, "train_bias": False, "stop_at_accuracy": 0.9,
               "train_size": 30, "nudging": "centered", "omega": 1.5}
    ns = build_parser().parse_args(["info", *_argv_for(changed)])
    assert build_config(ns) == Config(**changed)


def test_config_file_round_trip(tmp_path, capsys):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('task = "xor"\narch = "lattice"\nrows = 3\ncols = 4\nneighbourhood = 8\n'
                   'lr = 0.02\nepochs = 2\nstop_at_accuracy = 0.75\n')
    d = run_json(capsys, "info", "--config", cfg, "--json")
    assert d["n_couplings"] == 2 * 12 - 3 - 4 + 2 * 2 * 3
    d = run_json(capsys, "info", "--config", cfg, "--rows", "5", "--json")  # flag wins
    assert d["n_nodes"] == 20
    out = tmp_path / "run"
    run_json(capsys, "train", "--config", cfg, "--lr", "0.03", "--stop-at-accuracy", "none",
             "--out", out, "--json")
    written = Config.load(out / "config.toml")
    assert written == Config(task="xor", arch="lattice", rows=3, cols=4, neighbourhood=8,
                             lr=0.03, epochs=2)
    # the written file is a valid --config: the same run again, bit for bit
    js = tmp_path / "exp.json"
    js.write_text(written.to_json())
    run_json(capsys, "train", "--config", out / "config.toml", "--out", tmp_path / "r2",
             "--json")
    run_json(capsys, "train", "--config", js, "--out", tmp_path / "r3", "--json")
    w1 = load_snapshot(out / "snapshot.npz").w
    assert np.array_equal(w1, load_snapshot(tmp_path / "r2" / "snapshot.npz").w)
    assert np.array_equal(w1, load_snapshot(tmp_path / "r3" / "snapshot.npz").w)


# -- errors --------------------------------------------------------------------------------
def _bad_inputs(tmp: Path) -> list[tuple[list, tuple]]:
    corrupt = tmp / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    unknown = tmp / "unknown.toml"
    unknown.write_text('rows = 3\ncolour = "blue"\n')
    bad_toml = tmp / "broken.toml"
    bad_toml.write_text("rows = = 3\n")
    return [
        (["info", "--rows", "-1"], ("rows", "-1")),
        (["train", "--nudging", "sideways"], ("nudging", "sideways")),
        (["train", "--epochs", "1", "--lr", "-0.1"], ("lr", "-0.1")),
        (["info", "--rows", "three"], ("--rows", "three")),
        (["info", "--layers", "20,x"], ("--layers", "20,x")),
        (["train", "--unknown-flag"], ("--unknown-flag",)),
        (["evaluate", corrupt], ("corrupt.npz",)),
        (["evaluate", tmp / "missing.npz"], ("missing.npz",)),
        (["train", "--config", tmp / "missing.toml"], ("missing.toml",)),
        (["info", "--config", unknown], ("colour", "unknown.toml")),
        (["info", "--config", bad_toml], ("broken.toml", "TOML")),
        (["gradcheck", "--rows", "3", "--cols", "3", "--betas", "0"], ("betas",)),
        (["serve", "--port", "70000"], ("--port", "70000")),
        (["info", "--arch", "lattice", "--rows", "2", "--cols", "1"], ("cols",)),
    ]


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    for argv, names in _bad_inputs(tmp_path):
        status, out, err = run(capsys, *argv)
        assert status == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("xyprop: error: "), (argv, err)
        assert "Traceback" not in err and out == ""
        for n in names:
            assert n in lines[0], (argv, n, lines[0])


def test_bad_input_in_a_subprocess(tmp_path):
    proc = subprocess.run([*xyprop_exe(), "train", "--rows", "-1"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "xyprop: error: config field 'rows': got -1; allowed: an integer >= 1"]


def test_resume_refuses_structural_changes(tmp_path, capsys):
    run_json(capsys, "train", *LATTICE3, "--epochs", "1", "--out", tmp_path, "--json")
    status, _, err = run(capsys, "train", "--resume", tmp_path / "snapshot.npz", "--rows", "5")
    assert status == 2 and "--rows" in err and len(err.strip().splitlines()) == 1
    # restating an unchanged structural value is fine
    status, _, err = run(capsys, "train", "--resume", tmp_path / "snapshot.npz", "--rows",
                         "3", "--epochs", "2", "--json")
    assert status == 0, err


# -- gradcheck -----------------------------------------------------------------------------
def test_gradcheck_npz_and_json(tmp_path, capsys):
    path = tmp_path / "gc.npz"
    res = run_json(capsys, "gradcheck", *LATTICE3, "--out", path, "--json",
                   "--betas", "1e-4,1e-3", "1e-2")
    with np.load(path, allow_pickle=False) as z:
        r = {k: z[k] for k in z.files}
    S, E, N, B = 3, 12, 9, 3  # XOR's (+,+) sample is excluded at the ferro start
    shapes = {"src": (E,), "dst": (E,), "coupling": (E,), "h": (N,), "psi": (N,),
              "input_nodes": (2,), "output_nodes": (1,), "coords": (N, 2),
              "inputs": (S, 2), "targets": (S, 1), "free_phases": (S, N), "betas": (B,),
              "ep_grad_one_sided": (B, E), "ep_grad_centered": (B, E), "true_grad": (E,)}
    for k, shape in shapes.items():
        assert r[k].shape == shape, k
    assert res["betas"] == [1e-4, 1e-3, 1e-2]
    assert res["cosine_centered"][0] > 0.99 and res["cosine_one_sided"][0] > 0.99
    # the JSON numbers are those of the arrays in the file
    for k, est in (("one_sided", r["ep_grad_one_sided"]), ("centered", r["ep_grad_centered"])):
        for i in range(B):
            assert res[f"cosine_{k}"][i] == pytest.approx(cosine(est[i], r["true_grad"]))
            assert res[f"rel_error_{k}"][i] == pytest.approx(
                relative_error(est[i], r["true_grad"]))
    # the stored free phases are equilibria of the stored network
    tr = Trainer(Config(rows=3, cols=3, neighbourhood=4))
    f = System(tr.net).forces(r["free_phases"], r["coupling"], r["h"], r["psi"])
    assert np.abs(f).max() < 1e-9
    status, out, _ = run(capsys, "gradcheck", *LATTICE3, "--betas", "1e-3", "--samples", "2")
    assert status == 0 and "centered" in out


# -- bench and serve (modules written elsewhere, replaced by stand-ins here) ----------------
def test_bench_and_serve_call_their_modules(monkeypatch, capsys):
    bench = types.ModuleType("xyprop.app.benchmark")
    calls = []
    bench.run_benchmarks = lambda quick: calls.append(quick) or [
        {"name": "xor/exact", "samples_per_s": 1000.0, "reference_samples_per_s": 250.0,
         "ratio": 4.0}]
    server = types.ModuleType("xyprop.app.server")
    server.serve = lambda **kw: calls.append(kw)
    monkeypatch.setitem(sys.modules, "xyprop.app.benchmark", bench)
    monkeypatch.setitem(sys.modules, "xyprop.app.server", server)
    assert run_json(capsys, "bench", "--quick", "--json")[0]["ratio"] == 4.0
    status, out, _ = run(capsys, "bench")
    assert status == 0 and "xor/exact" in out and "4.00" in out
    assert run(capsys, "serve", "--port", "0", "--no-show")[0] == 0
    assert calls == [True, False, {"port": 0, "address": "127.0.0.1", "show": False}]


def test_missing_app_module_is_an_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "xyprop.app.benchmark", None)  # import fails
    status, _, err = run(capsys, "bench")
    assert status == 2 and "xyprop.app.benchmark" in err and "Traceback" not in err
    monkeypatch.setitem(sys.modules, "xyprop.app.server", types.ModuleType("x"))  # no serve
    status, _, err = run(capsys, "serve", "--no-show")
    assert status == 2 and "xyprop.app.server.serve" in err


def test_no_command_prints_help(capsys):
    status, _, err = run(capsys)
    assert status == 2 and "train" in err and "gradcheck" in err
