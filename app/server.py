"""Serve the dashboard: one fresh :class:`~xyprop.app.session.Dashboard` per browser session.

``xyprop serve`` (app/cli.py) calls :func:`serve` (the dashboard at ``/``, the sweep
results viewer at ``/sweeps``); ``panel serve app/main.py`` serves the
same page through :func:`create_app`. Kernels are compiled (or loaded from numba's cache)
before the server takes its first click, so a first Train starts at once.
"""

from __future__ import annotations

import socket

import panel as pn

from .runner import warm_up
from .session import Dashboard

TITLE = "xyprop"


def create_app():
    """The page of one session (a FastListTemplate holding a new Dashboard)."""
    return Dashboard().template()


def create_sweeps():
    """The Sweeps page: load a sweep's results.csv and plot any metric against any field."""
    from .sweeps_view import SweepsView

    return pn.template.FastListTemplate(
        title="xyprop sweeps", main=[SweepsView()], accent_base_color="#3b6ea8",
        header_background="#2c4f7c", theme_toggle=False)


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def websocket_origins(address: str, port: int) -> list[str]:
    """Hosts whose pages may open the websocket: this address, and loopback names."""
    if address in ("0.0.0.0", "::", ""):
        return ["*"]  # the user exposed the server on every interface on purpose
    return sorted({f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"})


def serve(port: int = 5006, address: str = "127.0.0.1", show: bool = True,
          threaded: bool = False, warm: bool = True, **kwargs):
    """Serve the dashboard at ``http://address:port/`` (``port=0`` picks a free port).

    Blocks until interrupted unless ``threaded=True``, which returns the server thread
    (``.stop()`` ends it; ``pn.state.kill_all_servers()`` ends all). The chosen port is
    available as ``serve.last_port``. Extra ``kwargs`` go to ``pn.serve``.
    """
    if warm:
        warm_up()
    if port == 0:
        port = _free_port(address)
    serve.last_port = port
    opts = dict(port=port, address=address, show=show, title=TITLE, threaded=threaded,
                websocket_origin=websocket_origins(address, port),
                # A closed tab ends its session (and its training thread) within seconds.
                check_unused_sessions_milliseconds=1000,
                unused_session_lifetime_milliseconds=5000)
    opts.update(kwargs)
    return pn.serve({"/": create_app, "/sweeps": create_sweeps}, **opts)


serve.last_port = None

__all__ = ["serve", "create_app", "create_sweeps", "websocket_origins"]
