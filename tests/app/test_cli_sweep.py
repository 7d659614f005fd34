"""`xyprop sweep` end to end in a subprocess: a real local Dask cluster, results.csv."""

import csv
import subprocess
import sys


def _xyprop(*args, cwd):
    return subprocess.run([sys.executable, "-m", "xyprop.app.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_sweep_command_writes_rows_and_resumes(tmp_path):
    f = tmp_path / "grid.toml"
    f.write_text('[base]\ntask = "xor"\narch = "layered"\nlayers = [3]\nepochs = 5\n'
                 "[grid]\nseed = [0, 1]\nbeta = [0.1, 0.0]\n")
    r = _xyprop("sweep", str(f), "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "grid" / "results.csv").open()))
    assert sorted((row["seed"], row["beta"], row["status"]) for row in rows) == [
        ("0", "0.0", "error"), ("0", "0.1", "ok"), ("1", "0.0", "error"), ("1", "0.1", "ok")]
    ok = [row for row in rows if row["status"] == "ok"]
    assert all(int(row["n_couplings"]) == 2 * 3 + 3 * 1 and row["epochs"] == "5" for row in ok)
    assert all("beta" in row["error"] for row in rows if row["status"] == "error")
    before = (tmp_path / "grid" / "results.csv").read_text()
    again = _xyprop("sweep", str(f), "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0
    assert (tmp_path / "grid" / "results.csv").read_text() == before


def test_sweep_command_rejects_bad_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[grid]\nrows = [3, 'x']\nhiden = [1]\n")
    r = _xyprop("sweep", str(f), cwd=tmp_path)
    assert r.returncode == 2
    assert "hiden" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
