"""``nnscratch playground``: watch a network learn in the browser, on the real engine.

A local web server (``server``) gives each open page a ``Session``
(``session``): 2-D data (``datasets``), the chosen input features, a
``Network`` built from the page's settings and trained by ``Network.fit``, and
what the page draws after every epoch. The page itself is plain HTML, CSS and
JavaScript in ``static/``, with nothing fetched from the internet. Needs the
``playground`` extra (Starlette and uvicorn) for the server; the session and
datasets need only the engine.
"""

from __future__ import annotations

from .session import Session, SettingsError

__all__ = ["Session", "SettingsError"]
