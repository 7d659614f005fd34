"""Settings <-> Config mapping, validation, live/structural split and URL sync."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs

import pytest
from panel.io.location import Location

from xyprop.app.settings import (
    FIELDS,
    LIVE,
    STRUCTURAL,
    URL_PARAMS,
    Settings,
    parse_layers,
    sync_url,
)
from xyprop.engine import CONFIG_FIELDS, Config, Trainer, mnist_sample_path

CASES = [
    {},
    {"arch": "lattice", "rows": 8, "cols": 6, "neighbourhood": 8, "skip_length": 3,
     "skip_count": 2},
    {"arch": "layered", "layers": (20, 10), "task": "iris"},
    {"arch": "layered", "layers": (), "task": "digits"},
    {"arch": "all-to-all", "hidden": 7, "task": "iris"},
    {"nudging": "centered", "cost": "cosine", "solver": "gradient-flow", "beta": 0.01},
    {"optimizer": "momentum", "lr": 0.3, "lr_decay": 0.01, "stop_at_accuracy": 0.95},
    {"init": "glassy", "init_scale": 1.25, "m_init": 3, "batch_size": 16, "seed": 123,
     "epochs": 5},
    # fields the page does not show must survive through ``base``
    {"tol": 1e-5, "momentum": 0.8, "max_iter": 500, "omega": 1.7, "train_size": 50,
     "task": "iris", "train_bias": False, "init_mean": 0.5},
    {"task": "mnist", "arch": "layered", "layers": (16,), "data_dir": "/some/folder"},
    {"task": "digits", "arch": "stacked", "window": 3, "stride": 2, "channels": 2,
     "sheets": 1, "weight_sharing": True, "intra": 4, "readout": "local"},
]


@pytest.mark.parametrize("changes", CASES)
def test_config_settings_config_round_trip(changes):
    cfg = Config(**changes)
    s = Settings()
    s.from_config(cfg)
    back = s.to_config()
    assert back == dataclasses.replace(cfg, parallel=False)


@pytest.mark.parametrize("changes", CASES[:8] + CASES[-1:])
def test_settings_config_settings_round_trip(changes):
    s1 = Settings()
    s1.from_config(Config(**changes))
    s2 = Settings()
    s2.from_config(s1.to_config())
    assert {f: getattr(s2, f) for f in FIELDS} == {f: getattr(s1, f) for f in FIELDS}


def test_exposed_values_reach_the_config():
    s = Settings(task="iris", arch="layered", layers="20, 10", lr=0.125, beta=0.02,
                 stop_at_accuracy=0.0, seed=7)
    c = s.to_config()
    assert (c.task, c.arch, c.layers, c.lr, c.beta, c.seed) == (
        "iris", "layered", (20, 10), 0.125, 0.02, 7)
    assert c.stop_at_accuracy is None  # 0 means off
    assert c.parallel is False  # serial kernels in the server, always


def test_parallel_is_forced_off_even_from_a_parallel_config():
    s = Settings()
    s.from_config(Config(parallel=True))
    assert s.to_config().parallel is False


def test_mnist_without_folder_uses_the_bundled_sample():
    s = Settings(task="mnist", arch="layered")
    assert s.to_config().data_dir == str(mnist_sample_path())
    s2 = Settings()
    s2.from_config(s.to_config())
    assert s2.data_dir == ""  # shown as "bundled", not as a machine-specific path


@pytest.mark.parametrize("field,value", [
    ("beta", -1.0), ("lr", 0.0), ("rows", 0), ("batch_size", 0), ("m_init", 0),
    ("stop_at_accuracy", 1.5), ("lr_decay", 1.0), ("init_scale", -0.1), ("epochs", -1),
    ("layers", "20,x"), ("layers", "0"), ("skip_count", 3),
])
def test_invalid_settings_raise_value_error_naming_the_field(field, value):
    s = Settings(arch="layered" if field == "layers" else "lattice")
    setattr(s, field, value)
    # skip_count > 0 with skip_length 0 is reported on skip_length, the field to fix
    name = "skip_length" if field == "skip_count" else field
    with pytest.raises(ValueError, match=f"'{name}'"):
        s.to_config()


def test_parse_layers():
    assert parse_layers("20,10") == (20, 10)
    assert parse_layers(" 5 ; 3 ") == (5, 3)
    assert parse_layers("") == ()
    with pytest.raises(ValueError, match="'layers'.*'-3'"):
        parse_layers("-3")


def test_live_and_structural_partition_the_exposed_fields():
    assert set(LIVE) | set(STRUCTURAL) == set(FIELDS)
    assert not set(LIVE) & set(STRUCTURAL)
    assert set(FIELDS) <= set(CONFIG_FIELDS)


def test_live_fields_are_accepted_by_the_trainer_and_structural_ones_refused():
    tr = Trainer(Config(task="xor", rows=2, cols=2))
    values = Settings(lr=0.2, beta=0.05, epochs=7, stop_at_accuracy=0.9).live_values()
    tr.update_config(**values)
    assert tr.config.lr == 0.2 and tr.config.beta == 0.05 and tr.config.epochs == 7
    for f in STRUCTURAL:
        if f in Trainer.LIVE_FIELDS:  # "cost": the engine could, the page asks for a reset
            continue
        with pytest.raises(ValueError, match="reset"):
            tr.update_config(**{f: getattr(Config(), f)})


def test_pending_lists_only_structural_changes():
    s = Settings()
    running = s.to_config()
    s.param.update(lr=0.5, beta=0.01, epochs=3)
    assert s.pending(running) == []
    s.param.update(rows=6, seed=4)
    assert s.pending(running) == ["rows", "seed"]


# -- URL sync ------------------------------------------------------------------------------
def test_url_params_are_the_config_field_names():
    assert all(k == v for k, v in URL_PARAMS.items())
    assert set(URL_PARAMS) == set(FIELDS) - {"data_dir", "edge_file"}


def test_url_values_are_applied_with_their_types():
    s = Settings()
    loc = Location(search="?rows=8&lr=0.01&neighbourhood=8&layers=10&arch=layered"
                          "&stop_at_accuracy=0.9&nudging=centered&weight_sharing=true&intra=8")
    errors = []
    sync_url(s, loc, on_error=errors.append)
    assert errors == []
    assert (s.rows, s.lr, s.neighbourhood, s.layers, s.arch) == (8, 0.01, 8, "10", "layered")
    assert s.to_config().layers == (10,) and s.to_config().nudging == "centered"
    assert s.weight_sharing is True and s.intra == 8


def test_settings_changes_rewrite_the_url():
    s = Settings()
    loc = Location(search="")
    sync_url(s, loc)
    s.beta = 0.05
    s.layers = "20,10"
    q = parse_qs(loc.search.lstrip("?"))
    assert q["beta"] == ["0.05"] and q["layers"] == ["20,10"]
    assert set(q) == set(URL_PARAMS)  # every shared setting is in the address


def test_a_shared_url_restores_the_setup():
    s1 = Settings(task="iris", arch="all-to-all", hidden=9, lr=0.02, beta=0.03, seed=11,
                  optimizer="momentum", init="glassy", epochs=40, batch_size=8)
    loc1 = Location(search="")
    sync_url(s1, loc1)
    s2 = Settings()
    sync_url(s2, Location(search=loc1.search))
    assert s2.to_config() == s1.to_config()


def test_bad_url_values_are_reported_not_raised():
    s = Settings()
    errors = []
    sync_url(s, Location(search="?rows=abc"), on_error=errors.append)
    assert errors and errors[0]["rows"] == "abc"
    assert s.rows == Config().rows
