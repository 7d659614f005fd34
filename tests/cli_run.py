"""Run the ``xyprop`` command in-process for tests."""

import json

from xyprop.app.cli import main


def run(capsys, *argv):
    """``main(argv)`` in-process: (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, *argv):
    """``main(argv)`` that must succeed; its stdout parsed as JSON."""
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    return json.loads(out)
