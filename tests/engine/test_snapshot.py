"""Snapshot .npz files: round trip, plain-numpy readability, atomic writes, corrupt files."""

from __future__ import annotations

import dataclasses
import io
import json
import os

import numpy as np
import pytest

from xyprop.engine import FORMAT_VERSION, Config, Snapshot, Trainer, load_snapshot
from xyprop.engine import snapshot as snapshot_module

PLAIN_ARRAYS = ("src", "dst", "coupling", "h", "psi", "input_nodes", "output_nodes", "coords")


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    """Taken mid-epoch after 3 steps (batch 2 on XOR's 4 samples): history, optimiser state,
    phases of the last batch and a random state are all non-trivial."""
    tr = Trainer(Config(task="xor", arch="lattice", rows=3, cols=3, batch_size=2, epochs=5,
                        seed=3))
    for _ in range(3):
        s = tr.step()
    assert s.epoch == 1 and s.step_in_epoch == 2 and s.history
    return s


def _arrays(s: Snapshot) -> dict[str, np.ndarray]:
    return {f.name: getattr(s, f.name) for f in dataclasses.fields(s)
            if isinstance(getattr(s, f.name), np.ndarray)}


def _assert_same(a: Snapshot, b: Snapshot):
    arrs_a, arrs_b = _arrays(a), _arrays(b)
    assert arrs_a.keys() == arrs_b.keys()
    assert set(PLAIN_ARRAYS) <= arrs_a.keys()
    for k in arrs_a:
        assert arrs_a[k].dtype == arrs_b[k].dtype, k
        np.testing.assert_array_equal(arrs_a[k], arrs_b[k], err_msg=k)
    for f in dataclasses.fields(a):
        if f.name not in arrs_a:
            assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert a.metrics == b.metrics and a.meta() == b.meta()


def test_round_trip_file(snap, tmp_path):
    back = load_snapshot(snap.save(tmp_path / "s.npz"))
    _assert_same(snap, back)
    assert back.config == snap.config and back.shape == (3, 3) and back.kind == "lattice"
    assert back.free_phases.shape == (2, 9) and back.free_phases.any()


def test_round_trip_bytes(snap):
    _assert_same(snap, load_snapshot(io.BytesIO(snap.to_bytes())))


def test_resumable_after_round_trip(snap, tmp_path):
    """The random state survives: a trainer rebuilt from the file draws what the original
    generator would."""
    back = load_snapshot(snap.save(tmp_path / "s.npz"))
    g1, g2 = np.random.default_rng(), np.random.default_rng()
    g1.bit_generator.state = snap.rng_state
    g2.bit_generator.state = back.rng_state
    assert g1.random() == g2.random()


def test_plain_numpy_can_read_it(snap, tmp_path):
    p = snap.save(tmp_path / "s.npz")
    with np.load(p, allow_pickle=False) as z:
        assert set(PLAIN_ARRAYS) <= set(z.files)
        for k in PLAIN_ARRAYS:
            np.testing.assert_array_equal(z[k], getattr(snap, k))
        assert z["coords"].shape == (9, 2)
        meta = json.loads(str(z["meta"]))
    assert meta["format_version"] == FORMAT_VERSION
    assert Config.from_dict(meta["config"]) == snap.config


def test_save_is_atomic_and_swaps_in_whole_file(snap, tmp_path):
    p = tmp_path / "s.npz"
    p.write_bytes(os.urandom(3_000_000))  # much bigger than a snapshot
    snap.save(p)
    assert os.listdir(tmp_path) == ["s.npz"]  # no temp files left behind
    assert p.stat().st_size < 1_000_000
    _assert_same(snap, load_snapshot(p))
    other = dataclasses.replace(snap, step=snap.step + 1, epoch=7)
    other.save(p)
    assert load_snapshot(p).epoch == 7 and os.listdir(tmp_path) == ["s.npz"]


def test_failed_save_leaves_old_file(snap, tmp_path, monkeypatch):
    p = snap.save(tmp_path / "s.npz")
    before = p.read_bytes()

    def broken(fh, **arrays):
        fh.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(snapshot_module.np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        dataclasses.replace(snap, epoch=99).save(p)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.npz"]


# ---------------------------------------------------------------------------------------
# corrupt files
# ---------------------------------------------------------------------------------------


def _raw(snap) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(snap.to_bytes()), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write(path, arrays) -> str:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return str(path)


def _with_meta(snap, **changes):
    d = _raw(snap)
    meta = json.loads(str(d["meta"]))
    meta.update(changes)
    d["meta"] = np.array(json.dumps(meta))
    return d


def _load_error(path) -> str:
    with pytest.raises(ValueError) as e:
        load_snapshot(path)
    assert str(path) in str(e.value)  # the message names the file
    return str(e.value)


def test_truncated_file(snap, tmp_path):
    b = snap.to_bytes()
    for cut in (len(b) // 2, len(b) - 30, 100, 0):
        p = tmp_path / f"t{cut}.npz"
        p.write_bytes(b[:cut])
        _load_error(p)


def test_random_bytes(tmp_path):
    p = tmp_path / "r.npz"
    p.write_bytes(np.random.default_rng(0).bytes(5000))
    _load_error(p)


def test_missing_file(tmp_path):
    assert "no such file" in _load_error(tmp_path / "nope.npz")


@pytest.mark.parametrize("name", ["w", "coupling", "meta", "coords"])
def test_missing_array(snap, tmp_path, name):
    d = _raw(snap)
    del d[name]
    assert name in _load_error(_write(tmp_path / "m.npz", d))


@pytest.mark.parametrize("version", [0, FORMAT_VERSION + 1, "1", None])
def test_wrong_format_version(snap, tmp_path, version):
    msg = _load_error(_write(tmp_path / "v.npz", _with_meta(snap, format_version=version)))
    assert "format version" in msg and repr(version) in msg


def test_coupling_must_equal_shared_parameters(snap, tmp_path):
    d = _raw(snap)
    d["coupling"] = d["coupling"].copy()
    d["coupling"][3] += 0.5
    assert "coupling" in _load_error(_write(tmp_path / "c.npz", d))


@pytest.mark.parametrize("name,shape", [("h", (8,)), ("psi", (10,)), ("coupling", (5,)),
                                        ("coords", (8, 2)), ("coords", (9, 3)),
                                        ("h", (9, 2)), ("h", ()), ("w", ()),
                                        ("free_phases", (2, 8)), ("nudged_phases", (3, 9)),
                                        ("batch_targets", (2, 2))])
def test_mismatched_shapes(snap, tmp_path, name, shape):
    d = _raw(snap)
    d[name] = np.zeros(shape, dtype=d[name].dtype)
    if name == "w" or name == "coupling":  # keep coupling == w[param_index] out of the way
        d["w"] = np.zeros(shape) if name == "w" else d["w"]
    msg = _load_error(_write(tmp_path / "s.npz", d))
    assert name in msg


@pytest.mark.parametrize("name", ["w", "h", "psi"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_parameters(snap, tmp_path, name, bad):
    d = _raw(snap)
    d[name] = d[name].copy()
    d[name][1] = bad
    if name == "w":  # a consistent file apart from the bad value itself
        d["coupling"] = d["w"][d["param_index"]]
    msg = _load_error(_write(tmp_path / "n.npz", d))
    assert name in msg and "NaN" in msg


def test_wrong_dtype_and_bad_indices(snap, tmp_path):
    d = _raw(snap)
    d["src"] = d["src"].astype(float)
    assert "src" in _load_error(_write(tmp_path / "a.npz", d))
    d = _raw(snap)
    d["dst"] = d["dst"].copy()
    d["dst"][0] = 9
    assert "dst" in _load_error(_write(tmp_path / "b.npz", d))


@pytest.mark.parametrize("meta", ["{not json", "[1, 2]", "3", '"text"'])
def test_bad_metadata(snap, tmp_path, meta):
    d = _raw(snap)
    d["meta"] = np.array(meta)
    assert "meta" in _load_error(_write(tmp_path / "j.npz", d))


def test_metadata_missing_key_or_bad_config(snap, tmp_path):
    d = _raw(snap)
    meta = json.loads(str(d["meta"]))
    del meta["epoch"]
    d["meta"] = np.array(json.dumps(meta))
    assert "'epoch'" in _load_error(_write(tmp_path / "k.npz", d))
    cfg = dict(snap.config.to_dict(), lr=-1.0)
    assert "'lr'" in _load_error(_write(tmp_path / "l.npz", _with_meta(snap, config=cfg)))


_UNPICKLED: list[str] = []


def _canary():
    _UNPICKLED.append("unpickled!")
    return np.zeros(3)


class _Canary:
    def __reduce__(self):
        return (_canary, ())


@pytest.mark.parametrize("name", ["w", "meta", "extra"])
def test_object_arrays_are_rejected_without_unpickling(snap, tmp_path, name):
    d = _raw(snap)
    d[name] = np.array([_Canary(), 1], dtype=object)
    path = _write(tmp_path / "o.npz", d)
    _load_error(path)
    assert _UNPICKLED == []
