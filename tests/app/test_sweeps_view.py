"""The Sweeps view: summaries of a results table and loading a real sweep's CSV."""

import numpy as np
import pandas as pd
import pytest

from xyprop.app.sweeps_view import SweepsView, read_results_csv, summarise


def _table():
    rows = []
    for arch, n in (("lattice", 24), ("all-to-all", 40)):
        for seed, acc in enumerate((0.5, 0.75, 1.0)):
            rows.append({"run_id": f"{arch}{seed}", "status": "ok", "arch": arch,
                         "seed": seed, "n_couplings": n,
                         "test_accuracy": acc if arch == "lattice" else 1.0})
    rows.append({"run_id": "bad", "status": "error", "arch": "lattice", "seed": 9,
                 "n_couplings": 24, "test_accuracy": np.nan})
    return pd.DataFrame(rows)


def test_summarise_pools_seeds_and_drops_errors():
    s = summarise(_table(), "n_couplings", "test_accuracy", "arch")
    lat = s[s["arch"] == "lattice"].iloc[0]
    assert lat["n"] == 3
    assert lat["mean"] == pytest.approx(0.75)
    assert lat["std"] == pytest.approx(np.std([0.5, 0.75, 1.0], ddof=1))
    full = s[s["arch"] == "all-to-all"].iloc[0]
    assert (full["mean"], full["std"], full["n"]) == (1.0, 0.0, 3)


def test_view_loads_csv_bytes_and_picks_axes(tmp_path):
    data = _table().to_csv(index=False).encode()
    view = SweepsView()
    view.load(read_results_csv(data))
    assert view.x == "n_couplings" and view.y == "test_accuracy" and view.colour == "arch"
    overlay = view.plot.object
    # one scatter, one mean curve and one error-bar layer per architecture
    assert len(overlay) == 6
    curves = [el for el in overlay if el.group == "Curve"]
    means = sorted(float(c.dimension_values("mean")[0]) for c in curves)
    assert means == pytest.approx([0.75, 1.0])
    assert "1 failed" in view.message.object


def test_case_labels_colour_a_sweep_with_cases():
    """A sweep with [[case]] tables: its labels name the networks, so they colour the plot."""
    df = _table()
    df["label"] = ["net " + a for a in df["arch"]]
    view = SweepsView()
    view.load(read_results_csv(df.to_csv(index=False).encode()))
    assert view.colour == "label"
    labels = {el.label for el in view.plot.object}
    assert labels == {f"label = net {a}" for a in df["arch"].unique()}


def test_bad_file_is_reported():
    with pytest.raises(ValueError, match="run_id"):
        read_results_csv(b"a,b\n1,2\n")
