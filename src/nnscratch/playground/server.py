"""The playground's web server: one page, its static files and a WebSocket.

Each open page gets its own ``Session`` over ``/ws``. The page sends small JSON
messages (``settings``, ``play``, ``pause``, ``step``, ``reset``, ``csv``,
``explain``, ``export``); the server answers with ``data`` (points and input
features), ``frame`` (losses, output surface, neuron maps, weights),
``explain`` and ``export`` messages, or ``error`` with a sentence a person can
act on. While a page plays, the server trains one epoch per frame, at most
``max_rate`` frames a second; a page that closes takes its training with it.
When training stops on its own (the loss blew up), the page gets ``stopped``
with the reason and the frame of the restored weights; any other failure on
the server reaches the page as an ``error`` sentence (and its traceback the
terminal), and the session stays usable.

Limits keep a shared machine safe: at most ``MAX_SESSIONS`` pages at once,
messages of at most ``MAX_MESSAGE`` bytes (a CSV included), the network and
data sizes capped by the settings' checks. The page can never name a file:
data arrives as message text and the model leaves as message text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from pathlib import Path
from typing import Any

from ..extras import require
from ..training import TrainingDivergedError
from .datasets import MAX_CSV_BYTES, DataError
from .session import Session, SettingsError

__all__ = ["create_app", "serve", "MAX_SESSIONS", "MAX_MESSAGE", "is_loopback"]

STATIC = Path(__file__).parent / "static"
MAX_SESSIONS = 8
MAX_MESSAGE = MAX_CSV_BYTES + 10_000
_log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Page:
    """One connected page: its session, and the task that plays it."""

    def __init__(self, socket: Any, max_rate: float) -> None:
        self.socket, self.session = socket, Session()
        self.interval = 1.0 / max_rate
        self.player: asyncio.Task | None = None
        self.frames = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send_text(json.dumps(message, allow_nan=False))

    async def send_frame(self) -> None:
        self.frames += 1
        await self.send(self.session.frame())

    async def play(self) -> None:
        try:
            while True:
                started = time.perf_counter()
                self.session.train_epoch()
                await self.send_frame()
                await asyncio.sleep(max(0.0, self.interval - (time.perf_counter() - started)))
        except TrainingDivergedError as err:
            self.player = None
            await self.stopped(err)
        except Exception as err:  # noqa: BLE001 (a page's training must never die in silence)
            self.player = None
            await self.failed(err)

    async def stopped(self, err: TrainingDivergedError) -> None:
        """Training stopped on its own: say why, and show the weights it restored."""
        await self.send({"type": "stopped", "epoch": self.session.epoch,
                         "message": f"Training stopped at epoch {self.session.epoch + 1}: {err}"})  # fmt: skip
        await self.send_frame()

    async def failed(self, err: Exception) -> None:
        """Anything else that went wrong on the server: a sentence to the page, the traceback to the terminal."""
        _log.exception("playground: a page's request failed")
        await self.send({"type": "error", "message": f"The server could not do that ({type(err).__name__}: {err}); "
                         "the page is still connected: change a setting or press reset."})  # fmt: skip

    def pause(self) -> None:
        if self.player is not None:
            self.player.cancel()
            self.player = None

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        session = self.session
        if kind == "settings":
            playing = self.player is not None
            self.pause()
            session.configure(message.get("settings", {}))
            await self.send(session.data_message())
            await self.send_frame()
            if playing:
                self.player = asyncio.create_task(self.play())
        elif kind == "play":
            if self.player is None:
                self.player = asyncio.create_task(self.play())
        elif kind == "pause":
            self.pause()
            await self.send({"type": "paused", "epoch": session.epoch})
        elif kind == "step":
            self.pause()
            try:
                session.train_epoch()
            except TrainingDivergedError as err:
                await self.stopped(err)
                return
            await self.send_frame()
        elif kind == "reset":
            self.pause()
            session.reset()
            await self.send_frame()
        elif kind == "csv":
            self.pause()
            text = message.get("text")
            if not isinstance(text, str):
                raise SettingsError("a csv message carries the file's text")
            session.load_csv(text)
            await self.send(session.data_message())
            await self.send_frame()
        elif kind == "explain":
            await self.send(session.explain(message.get("x1"), message.get("x2")))
        elif kind == "export":
            await self.send(session.export())
        else:
            raise SettingsError(f"unknown message type {kind!r}")


def _message(received: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in a WebSocket frame, or a ``SettingsError`` that says what came instead."""
    text = received.get("text")
    if text is None:
        size = len(received.get("bytes") or b"")
        raise SettingsError(f"the playground takes text frames holding JSON; received a binary frame of {size:,} "
                            "bytes")  # fmt: skip
    if len(text) > MAX_MESSAGE:
        raise SettingsError(f"a message of {len(text):,} bytes is over the limit of {MAX_MESSAGE:,}")
    try:
        message = json.loads(text)
    except RecursionError:
        raise SettingsError("the message is nested too deeply to read; messages are flat JSON objects") from None
    if not isinstance(message, dict):
        raise SettingsError(f"messages are JSON objects; received {type(message).__name__}")
    return message


def create_app(max_rate: float = 20.0) -> Any:
    """The Starlette application (needs the playground extra)."""
    require("starlette", "playground")
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocketDisconnect

    pages: set[_Page] = set()

    async def index(request: Any) -> Any:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def status(request: Any) -> Any:
        return JSONResponse({"pages": len(pages), "playing": sum(p.player is not None for p in pages),
                             "frames": sum(p.frames for p in pages)})  # fmt: skip

    async def socket(websocket: Any) -> None:
        await websocket.accept()
        if len(pages) >= MAX_SESSIONS:
            await websocket.send_text(json.dumps({"type": "error", "message": f"the playground serves at most "
                                      f"{MAX_SESSIONS} pages at once; close another tab and reload"}))  # fmt: skip
            await websocket.close(code=1013)
            return
        page = _Page(websocket, max_rate)
        pages.add(page)
        try:
            while True:
                received = await websocket.receive()
                if received["type"] == "websocket.disconnect":
                    break
                try:
                    await page.handle(_message(received))
                except (SettingsError, DataError, json.JSONDecodeError) as err:
                    await page.send({"type": "error", "message": str(err)})
                except WebSocketDisconnect:
                    raise
                except Exception as err:  # noqa: BLE001 (the page hears of it; the session goes on)
                    await page.failed(err)
        except WebSocketDisconnect:
            pass
        finally:
            page.pause()  # training stops with the page
            pages.discard(page)

    async def no_icon(request: Any) -> Any:
        return Response(status_code=204)

    routes = [
        Route("/", index),
        Route("/status", status),
        Route("/favicon.ico", no_icon),
        WebSocketRoute("/ws", socket),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


def serve(host: str = "127.0.0.1", port: int = 0, open_browser: bool = True, max_rate: float = 20.0,
          announce: Any = None) -> None:  # fmt: skip
    """Run the playground until Ctrl-C. ``port=0`` picks a free port; the address is
    announced (and opened in the browser unless ``open_browser`` is False)."""
    require("uvicorn", "playground")
    import socket as sockets

    announce = announce or (lambda line: print(line, flush=True))
    import uvicorn

    family = sockets.AF_INET6 if ":" in host else sockets.AF_INET
    sock = sockets.socket(family, sockets.SOCK_STREAM)
    sock.setsockopt(sockets.SOL_SOCKET, sockets.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}/"
    if not is_loopback(host):
        announce(f"WARNING: the playground listens on {host}: anyone who can reach this machine on port {port} "
                 "can use it and its CPU. Use --host 127.0.0.1 unless you mean that.")  # fmt: skip
    announce(f"nnscratch playground at {url} (Ctrl-C to stop)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(create_app(max_rate), log_level="warning", ws_max_size=MAX_MESSAGE + 1024)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
