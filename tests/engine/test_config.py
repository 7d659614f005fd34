"""Config: dict / JSON / TOML round trips, validation messages, unknown keys."""

from __future__ import annotations

import dataclasses
import json
import math
import sys

import numpy as np
import pytest

from xyprop.engine import CONFIG_FIELDS, DEFAULTS, Config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAN, INF = math.nan, math.inf

CUSTOM = dict(task="iris", arch="layered", layers=(7, 5), train_size=30, test_size=None,
              data_dir="some/dir", beta=0.05, nudging="centered", cost="cosine",
              solver="gradient-flow", tol=1e-8, max_iter=500, omega=1.7, m_init=3,
              optimizer="momentum", lr=0.01, momentum=0.5, lr_decay=0.01, epochs=12,
              batch_size=7, seed=99, init="glassy", init_scale=0.25, init_mean=-0.5,
              train_bias=False, stop_at_accuracy=0.95, parallel=False, neighbourhood=4,
              skip_length=3, skip_count=2, input_placement="centre",
              output_placement="start", rows=9, cols=6, hidden=11)

CONFIGS = {
    "defaults": Config(),
    "custom": Config(**CUSTOM),
    "no-hidden-layers": Config(arch="layered", layers=()),
    "custom-arch": Config(arch="custom", edge_file="nets/my net.txt", stop_at_accuracy=1.0),
    "int-like-floats": Config(beta=1.0, lr=2.0, tol=1.0, omega=1.0, init_mean=0.0),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_round_trips(name, tmp_path):
    c = CONFIGS[name]
    d = c.to_dict()
    assert set(d) == set(CONFIG_FIELDS)
    assert isinstance(d["layers"], list)
    json.dumps(d)  # plain JSON types only
    for back in (Config.from_dict(d), Config.from_json(c.to_json()),
                 Config.from_toml(c.to_toml())):
        assert back == c
        assert isinstance(back.layers, tuple)
        assert back.to_dict() == d
    (tmp_path / "c.toml").write_text(c.to_toml())
    (tmp_path / "c.json").write_text(c.to_json())
    assert Config.load(tmp_path / "c.toml") == c
    assert Config.load(str(tmp_path / "c.json")) == c


def test_toml_keys_are_field_names():
    c = Config(**CUSTOM)
    keys = set(tomllib.loads(c.to_toml()))
    assert keys == {k for k, v in c.to_dict().items() if v is not None}
    assert "test_size" not in keys  # TOML has no null: unset fields are left out


def test_custom_values_really_differ_from_defaults():
    """Guards the round-trip test: it must exercise non-default values."""
    c = Config(**CUSTOM)
    for k in CUSTOM:
        if k != "test_size":
            assert getattr(c, k) != DEFAULTS[k], k


def test_ints_allowed_for_float_fields():
    c = Config.from_dict({"lr": 1, "beta": 2, "stop_at_accuracy": 1})
    assert c.lr == 1.0 and isinstance(c.lr, float)
    assert isinstance(c.beta, float) and isinstance(c.stop_at_accuracy, float)
    assert Config.from_toml("lr = 1\nlayers = [3, 4]\n") == Config(lr=1.0, layers=(3, 4))
    assert Config.from_json('{"layers": [3, 4]}').layers == (3, 4)


def test_changed_copy():
    c = Config()
    d = c.replace(lr=0.5, layers=[2, 2])
    assert d.lr == 0.5 and d.layers == (2, 2) and c.lr == DEFAULTS["lr"]
    with pytest.raises(ValueError, match="'lr'"):
        c.replace(lr=-1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 1.0  # type: ignore[misc]


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------

BAD = [
    ("task", "mnist2"), ("task", ""), ("task", None), ("task", 3),
    ("arch", "grid"), ("arch", None),
    ("hidden", 0), ("hidden", -1), ("hidden", 1.5), ("hidden", True), ("hidden", "5"),
    ("layers", (0,)), ("layers", (3, -1)), ("layers", (2.5,)), ("layers", (True,)),
    ("layers", "10"), ("layers", None),
    ("rows", 0), ("rows", -2), ("rows", 2.0), ("rows", True),
    ("cols", 0), ("cols", "4"),
    ("neighbourhood", 6), ("neighbourhood", 0), ("neighbourhood", "4"),
    ("skip_length", -1), ("skip_count", -1), ("skip_count", 1.0),
    ("input_placement", "left"), ("output_placement", "center"),
    ("edge_file", 3), ("data_dir", 3), ("data_dir", ["a"]),
    ("train_size", 0), ("train_size", -5), ("train_size", 2.5), ("train_size", True),
    ("test_size", 0),
    ("beta", 0.0), ("beta", -0.1), ("beta", NAN), ("beta", INF), ("beta", "0.1"),
    ("beta", True),
    ("nudging", "two-sided"), ("cost", "mse"), ("solver", "newton"),
    ("tol", 0.0), ("tol", -1e-6), ("tol", NAN),
    ("max_iter", 0), ("max_iter", 10.5),
    ("omega", 2.0), ("omega", -0.5), ("omega", 2.5), ("omega", NAN),
    ("m_init", 0), ("optimizer", "rmsprop"),
    ("lr", 0.0), ("lr", -0.01), ("lr", INF),
    ("momentum", 1.0), ("momentum", -0.1), ("momentum", 1.5),
    ("lr_decay", 1.0), ("lr_decay", -0.01),
    ("epochs", -1), ("batch_size", 0), ("seed", -1), ("seed", 1.5),
    ("init", "zeros"), ("init_scale", -0.5), ("init_scale", NAN),
    ("init_mean", NAN), ("init_mean", INF), ("init_mean", "1"),
    ("train_bias", 1), ("train_bias", "yes"), ("train_bias", None),
    ("stop_at_accuracy", 0.0), ("stop_at_accuracy", 1.5), ("stop_at_accuracy", -0.1),
    ("stop_at_accuracy", NAN),
    ("parallel", 0), ("parallel", "true"),
]


@pytest.mark.parametrize("field,value", BAD, ids=[f"{f}={v!r}" for f, v in BAD])
def test_invalid_value_names_field_and_value(field, value):
    with pytest.raises(ValueError) as e:
        Config(**{field: value})
    msg = str(e.value)
    assert repr(field) in msg and repr(value) in msg
    assert "allowed" in msg


@pytest.mark.parametrize("field", CONFIG_FIELDS)
def test_every_field_is_validated(field):
    """A value of the wrong kind is rejected for every field, present or future."""
    bad = {"not": "a valid value"}
    with pytest.raises(ValueError) as e:
        Config(**{field: bad})
    assert repr(field) in str(e.value) and repr(bad) in str(e.value)


@pytest.mark.parametrize("kw,field,value", [
    (dict(arch="lattice", rows=1, cols=1), "rows", 1),
    (dict(skip_count=2, skip_length=1), "skip_length", 1),
    (dict(skip_count=1, skip_length=0), "skip_length", 0),
    (dict(arch="custom"), "edge_file", None),
    (dict(arch="custom", edge_file=""), "edge_file", ""),
])
def test_cross_field_rules(kw, field, value):
    with pytest.raises(ValueError) as e:
        Config(**kw)
    assert repr(field) in str(e.value) and repr(value) in str(e.value)


@pytest.mark.parametrize("field,value", [("lr", -1), ("layers", [0]), ("optimizer", "x"),
                                         ("beta", 0)])
def test_invalid_values_from_text_formats(field, value):
    for load, text in ((Config.from_json, json.dumps({field: value})),
                       (Config.from_dict, {field: value})):
        with pytest.raises(ValueError, match=repr(field)):
            load(text)
    with pytest.raises(ValueError, match=repr(field)):
        Config.from_toml(f"{field} = {json.dumps(value)}\n")


# ---------------------------------------------------------------------------------------
# unknown keys and unreadable input
# ---------------------------------------------------------------------------------------


def test_unknown_keys_rejected(tmp_path):
    with pytest.raises(ValueError, match="'lrr'"):
        Config.from_dict({"lr": 0.1, "lrr": 0.1})
    with pytest.raises(ValueError, match="'colz'"):
        Config.from_json('{"colz": 3}')
    with pytest.raises(ValueError, match="'colz'"):
        Config.from_toml("colz = 3\n")
    with pytest.raises(ValueError, match="'colz'"):
        Config().replace(colz=3)
    p = tmp_path / "c.toml"
    p.write_text('task = "xor"\n[physics]\nbeta = 0.1\n')  # a table is an unknown key too
    with pytest.raises(ValueError, match="'physics'"):
        Config.load(p)


@pytest.mark.parametrize("text,loader", [("{not json", "json"), ("[1, 2]", "json"),
                                         ("lr = = 1", "toml"), ('"just a string"', "json")])
def test_malformed_text(text, loader):
    with pytest.raises(ValueError, match="config"):
        getattr(Config, f"from_{loader}")(text)


def test_load_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        Config.load(tmp_path / "missing.toml")
    p = tmp_path / "c.yaml"
    p.write_text("lr: 1\n")
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        Config.load(p)


def test_ferro_start_mean_depends_on_architecture_unless_set():
    """Unset init_mean: 2 on lattices, 1 elsewhere (docs/study.md); a set value wins."""
    from xyprop.engine import Trainer

    assert Config().init_mean is None and Config().ferro_mean() == 2.0
    assert Config(arch="all-to-all").ferro_mean() == 1.0
    assert Config(arch="layered", init_mean=0.5).ferro_mean() == 0.5
    assert Config(init_mean=1.0).ferro_mean() == 1.0
    for arch, mean in (("lattice", 2.0), ("all-to-all", 1.0)):
        tr = Trainer(Config(task="xor", arch=arch, rows=8, cols=8, hidden=20, init_scale=0.5))
        w = tr.w
        # sample mean of N(mean, 0.5^2) draws: within 5 standard errors
        assert abs(w.mean() - mean) < 5 * 0.5 / np.sqrt(w.size), (arch, w.mean())
    assert Config.from_toml(Config().to_toml()).init_mean is None  # unset survives TOML
