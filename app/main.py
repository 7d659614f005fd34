"""Entry point for ``panel serve app/main.py``: one Dashboard per session.

Kernels are warmed up in a background thread at the first import, so the first Train
does not pay for numba compilation.
"""

from xyprop.app.runner import warm_up_async
from xyprop.app.server import create_app

warm_up_async()  # returns at once; once per process
create_app().servable(title="xyprop")
