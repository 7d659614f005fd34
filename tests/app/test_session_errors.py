"""An invalid sidebar value blocks Train and Step with a message, never a silent old run."""

from xyprop.app.session import Dashboard


def test_invalid_setting_blocks_train_and_step():
    d = Dashboard(periodic=False)
    try:
        d.settings.lr = 0.0
        d.toggle_train()
        assert d.runner.state != "running"
        d.step_once()
        assert d.runner.trainer.step_count == 0
        assert "lr" in (d._settings_error or "")
        d.settings.lr = 0.05
        d.step_once()
        assert d._settings_valid()
    finally:
        d.runner.stop(timeout=10)
