"""The stacked-lattice and MNIST flags of ``xyprop`` and the MNIST benchmark cases.

Counts from ``xyprop info`` against closed forms (flags and TOML config files), invalid
window/stride combinations, ``--data-dir/--train-size/--test-size`` on the shipped real
MNIST sample, and ``xyprop bench`` with the MNIST cases (no numpy reference: null fields).
Timing numbers are not asserted: the machine may be shared.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from cli_run import run, run_json  # noqa: E402

from xyprop.app import benchmark
from xyprop.engine import Config, Trainer, load_snapshot, mnist_sample_path

SAMPLE = str(mnist_sample_path())
STACKED = ["--task", "mnist", "--arch", "stacked"]




def counts(window=6, stride=1, channels=1, sheets=1, weight_sharing=False, intra=0,
           readout="dense", train_bias=True, side=28, n_out=10) -> dict:
    """Closed forms: sheet side (s - k)/stride + 1; receptive-field couplings
    C_prev C s^2 k^2 (shared: C_prev C k^2 parameters); intra 4: C (2 s^2 - 2 s), 8 adds
    C 2 (s - 1)^2; readout C s^2 n_out (dense) or C s^2 (local); h and psi per free node."""
    sides, chans = [side], [1] + [channels] * sheets
    for _ in range(sheets):
        sides.append((sides[-1] - window) // stride + 1)
    edges = params = 0
    for l in range(1, sheets + 1):
        s = sides[l]
        rf = chans[l - 1] * channels * s * s * window * window
        bonds = channels * ((2 * s * s - 2 * s) * (intra > 0) + 2 * (s - 1) ** 2 * (intra == 8))
        edges += rf + bonds
        params += (chans[l - 1] * channels * window * window if weight_sharing else rf) + bonds
    last = channels * sides[-1] ** 2
    read = last * (n_out if readout == "dense" else 1)
    free = sum(channels * s * s for s in sides[1:]) + n_out
    return {"n_nodes": side * side + free, "n_couplings": edges + read,
            "n_coupling_parameters": params + read,
            "n_parameters": params + read + (2 * free if train_bias else 0)}


def test_info_for_the_papers_network(capsys):
    d = run_json(capsys, "info", *STACKED, "--json")
    assert d["n_couplings"] == 19_044 + 5_290
    assert d["n_coupling_parameters"] == 24_334
    assert d["n_parameters"] == 24_334 + 2 * (23 * 23 + 10)
    assert d["n_nodes"] == 784 + 529 + 10 and d["n_inputs"] == 784
    assert counts() == {k: d[k] for k in counts()}


FLAG_CASES = [
    dict(intra=4),
    dict(intra=8, readout="local"),
    dict(window=5, stride=1, channels=2, sheets=2),
    dict(window=6, stride=2, channels=3, sheets=2, weight_sharing=True, intra=8),
    dict(window=4, stride=3, channels=4, weight_sharing=True, train_bias=False),
]


def _flags(kw: dict) -> list[str]:
    out = []
    for k, v in kw.items():
        name = "--" + k.replace("_", "-")
        out += [name if v else "--no-" + name[2:]] if isinstance(v, bool) else [name, str(v)]
    return out


@pytest.mark.parametrize("kw", FLAG_CASES)
def test_info_counts_from_flags_match_closed_forms(capsys, kw):
    d = run_json(capsys, "info", *STACKED, *_flags(kw), "--json")
    want = counts(**kw)
    assert {k: d[k] for k in want} == want


def test_stacked_settings_in_a_toml_config_file(tmp_path, capsys):
    cfg = tmp_path / "stacked.toml"
    cfg.write_text('task = "mnist"\narch = "stacked"\nwindow = 5\nstride = 1\nchannels = 2\n'
                   'sheets = 2\nweight_sharing = true\nintra = 8\nreadout = "local"\n')
    kw = dict(window=5, stride=1, channels=2, sheets=2, weight_sharing=True, intra=8,
              readout="local")
    d = run_json(capsys, "info", "--config", cfg, "--json")
    assert {k: d[k] for k in counts(**kw)} == counts(**kw)
    # typed flags override the file
    d = run_json(capsys, "info", "--config", cfg, "--no-weight-sharing", "--intra", "0",
                 "--json")
    kw.update(weight_sharing=False, intra=0)
    assert {k: d[k] for k in counts(**kw)} == counts(**kw)


@pytest.mark.parametrize("flags,field", [
    (["--window", "5", "--stride", "2"], "window"),      # (28 - 5) / 2 is not whole
    (["--window", "29"], "window"),
    (["--window", "4", "--stride", "2", "--sheets", "2"], "window"),  # 28 -> 13 -> ?
    (["--window", "0"], "window"),
    (["--intra", "3"], "intra"),
    (["--readout", "sparse"], "readout"),
    (["--channels", "0"], "channels"),
])
def test_invalid_stacked_settings_exit_2_naming_the_field(capsys, flags, field):
    status, out, err = run(capsys, "info", *STACKED, *flags)
    assert status == 2 and out == ""
    assert f"'{field}'" in err and "Traceback" not in err


def test_invalid_window_in_a_config_file(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('task = "mnist"\narch = "stacked"\nwindow = 5\nstride = 2\n')
    status, _, err = run(capsys, "train", "--config", cfg, "--data-dir", SAMPLE)
    assert status == 2 and "'window'" in err and "Traceback" not in err


def test_train_on_local_mnist_subset_then_rerun_from_the_written_config(tmp_path, capsys):
    flags = [*STACKED, "--window", "6", "--stride", "2", "--data-dir", SAMPLE,
             "--train-size", "60", "--test-size", "7", "--epochs", "1", "--batch-size", "20",
             "--lr", "0.05"]
    d = run_json(capsys, "train", *flags, "--out", tmp_path / "a", "--json")
    assert d["n_couplings"] == counts(window=6, stride=2)["n_couplings"] == 144 * 36 + 1440
    assert d["epochs"] == 1 and 0 <= d["test_accuracy"] <= 1
    snap = load_snapshot(tmp_path / "a" / "snapshot.npz")
    assert (snap.config.data_dir, snap.config.train_size, snap.config.test_size) == (
        SAMPLE, 60, 7)
    assert snap.perm.size == 60 and snap.step == 3  # 60 digits in batches of 20
    assert Trainer.from_snapshot(snap).task.x_test.shape == (7, 784)
    # the written config.toml holds the data settings: the same run again, bit for bit
    written = Config.load(tmp_path / "a" / "config.toml")
    assert (written.data_dir, written.train_size, written.test_size) == (SAMPLE, 60, 7)
    run_json(capsys, "train", "--config", tmp_path / "a" / "config.toml", "--out",
             tmp_path / "b", "--json")
    again = load_snapshot(tmp_path / "b" / "snapshot.npz")
    np.testing.assert_array_equal(again.w, snap.w)
    # a typed flag overrides the file
    run_json(capsys, "train", "--config", tmp_path / "a" / "config.toml", "--train-size", "40",
             "--out", tmp_path / "c", "--json")
    assert load_snapshot(tmp_path / "c" / "snapshot.npz").perm.size == 40


@pytest.mark.parametrize("flags,needle", [
    (["--train-size", "0"], "train_size"),
    (["--train-size", "481"], "train_size"),   # the sample splits 480 / 120
    (["--test-size", "121"], "test_size"),
    (["--train-size", "ten"], "--train-size"),
])
def test_bad_subset_sizes_exit_2(capsys, flags, needle):
    status, _, err = run(capsys, "train", *STACKED, "--data-dir", SAMPLE, "--epochs", "1",
                         *flags)
    assert status == 2 and needle in err and "Traceback" not in err


def test_missing_data_dir_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    status, _, err = run(capsys, "train", *STACKED, "--data-dir", missing, "--epochs", "1")
    assert status == 2 and str(missing) in err and "Traceback" not in err


# -- benchmark ---------------------------------------------------------------------------------
def test_peak_rss_sees_a_large_allocation():
    if not benchmark.reset_peak_rss():
        pytest.skip("this system cannot reset the peak-RSS counter (/proc/self/clear_refs)")
    before = benchmark.peak_rss_mb()
    block = np.ones(200 * 2**20 // 8)  # 200 MB, touched
    del block
    after = benchmark.peak_rss_mb()
    assert after - before > 180
    benchmark.reset_peak_rss()
    assert benchmark.peak_rss_mb() < after - 180  # the reset forgot the old peak


@pytest.fixture(scope="module")
def mnist_cases():
    return benchmark.bench_mnist(quick=True, repeats=2)


def test_quick_mnist_cases(mnist_cases):
    names = [c["name"] for c in mnist_cases]
    assert names == [f"mnist/{v}/{p}/{m}" for v in ("base", "intra4")
                     for p in ("init", "trained") for m in ("serial", "parallel")]
    edges = {"base": counts()["n_couplings"], "intra4": counts(intra=4)["n_couplings"]}
    for c in mnist_cases:
        assert set(benchmark.REQUIRED_KEYS) <= set(c)
        for key in ("reference_samples_per_s", "ratio", "n_reference_samples",
                    "reference_iterations"):
            assert c[key] is None
        assert c["n_edges"] == edges[c["name"].split("/")[1]]
        assert math.isfinite(c["samples_per_s"]) and c["samples_per_s"] > 0
        assert c["seconds_per_60k_epoch"] == pytest.approx(60_000 / c["samples_per_s"])
        assert c["meets_target"] == (c["seconds_per_60k_epoch"] < 90)
        assert 20 < c["peak_rss_mb"] < 20_000
        assert c["n_samples"] == 40 and len(c["times_s"]) == c["repeats"] == 2
        assert c["parallel"] == c["name"].endswith("parallel")
        # serial and parallel relax the same rows to the same phases; all converged
        assert c["agrees"] is True and c["parallel_identical"] is True and c["failures"] == 0
        assert c["iterations"] > 1
        assert c["digits_trained"] == (400 if "/trained/" in c["name"] else 0)


def test_run_benchmarks_adds_the_mnist_cases(monkeypatch):
    calls = []
    monkeypatch.setattr(benchmark, "bench_task",
                        lambda name, *a, **kw: calls.append(name) or [{"name": name}])
    monkeypatch.setattr(benchmark, "bench_mnist",
                        lambda data, quick, repeats: calls.append(("mnist", data, quick))
                        or [{"name": "mnist/x"}])
    assert [c["name"] for c in benchmark.run_benchmarks()][-1] == "mnist/x"
    assert calls == ["xor", "iris", "digits", ("mnist", None, False)]
    calls.clear()
    assert "mnist/x" not in [c["name"] for c in benchmark.run_benchmarks(quick=True)]
    benchmark.run_benchmarks(quick=True, mnist=True, mnist_data="/data/mnist")
    assert ("mnist", "/data/mnist", True) in calls


def test_cli_bench_prints_mnist_cases_without_reference(monkeypatch, capsys, mnist_cases):
    monkeypatch.setattr(benchmark, "run_benchmarks", lambda quick: mnist_cases)
    rows = run_json(capsys, "bench", "--json")
    assert [r["name"] for r in rows] == [c["name"] for c in mnist_cases]
    for r in rows:
        assert r["reference_samples_per_s"] is None and r["ratio"] is None
        assert r["seconds_per_60k_epoch"] > 0 and r["peak_rss_mb"] > 0
    status, out, _ = run(capsys, "bench")
    assert status == 0
    for c in mnist_cases:
        line = next(ln for ln in out.splitlines() if ln.startswith(c["name"]))
        assert line.split()[1:] == [f"{c['samples_per_s']:.0f}", "-", "-"]
    table = benchmark.format_table(mnist_cases)
    assert all(c["name"] in table for c in mnist_cases) and " - " in table
