"""The panel's HTTP plumbing: the aiohttp application, TLS, the headers of every answer, the static files, the
session cookie and its CSRF token, and the strict reading of a request's JSON. It knows what a request is, not what
a guard may do or see (`actions.py`, `view.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from gateway.base import strict_json
from gateway.base.i18n import N_, normalise, tr
from gateway.base.strict_json import StrictJSONError
from gateway.config import PanelConfig
from gateway.panel.auth import Gatekeeper, Session, csrf_ok
from gateway.panel.bodies import what_is_wrong

log = logging.getLogger(__name__)

_M = TypeVar("_M")
BAD_REQUEST = N_("the request was not understood")

COOKIE = "campus_edge_panel"
STATIC = {"panel.js": "text/javascript", "panel.css": "text/css", "index.html": "text/html"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000",
}


def application(routes: Iterable[web.RouteDef]) -> web.Application:
    """The panel's application: the page and its files, then `routes`; every answer with the panel's headers."""
    app = web.Application(middlewares=[_headers], client_max_size=4096)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.add_routes(routes)
    return app


def tls_context(cfg: PanelConfig) -> ssl.SSLContext:
    """The gateway's own certificate and key (tls/, as `campus-edge init` made them)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


async def serve(app: web.Application, cfg: PanelConfig, port: int, on_bound: Callable[[int], None]) -> None:
    """Listen on the panel's address and `port` (0: any free one) over TLS, hand the bound port to `on_bound`, and
    serve until cancelled."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        family = socket.AF_INET6 if ":" in cfg.address else socket.AF_INET
        sock = socket.create_server((cfg.address, port), family=family, reuse_port=False)
        port = int(sock.getsockname()[1])
        await web.SockSite(runner, sock, ssl_context=tls_context(cfg)).start()
        log.info("guard panel on https://%s:%d/", cfg.address, port)
        on_bound(port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def index(_request: web.Request) -> web.Response:
    return _file("index.html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    return _file(name)


def require(gate: Gatekeeper, request: web.Request, csrf: bool = False) -> Session:
    """The session of the request's cookie, else 401; with `csrf`, also the page's token in its header, else 403."""
    session = gate.session(request.cookies.get(COOKIE))
    if session is None:
        raise web.HTTPUnauthorized(text='{"ok": false}', content_type="application/json")
    if csrf and not csrf_ok(session, request.headers.get("X-CSRF-Token")):
        raise web.HTTPForbidden(text='{"ok": false, "csrf": false}', content_type="application/json")
    return session


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, read strictly: `{"action": "lockdown_off", "action": "lockdown_on"}` has no
    one meaning, and is refused (logged, since the panel's page never sends one) like a body that is not JSON."""
    try:
        body = await request.json(loads=_strict_request)
    except ValueError as exc:
        if isinstance(exc, StrictJSONError):
            log.warning("panel: %s %s from %s refused: %s", request.method, request.path, request.remote, exc)
        text = json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False)
        raise web.HTTPBadRequest(text=text, content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"ok": false}', content_type="application/json")
    return body


def validate(request: web.Request, body: dict[str, Any], model: TypeAdapter[_M], lang: str) -> _M | web.Response:
    """`body` as its typed model, else the 400 answer to give: "not understood", in the body's language (`lang` when
    it names none), as for an unknown action. The page never sends such a body, so the log says what is wrong."""
    try:
        return model.validate_python(body, strict=True)
    except ValidationError as exc:
        log.warning("panel: %s %s from %s refused: %s", request.method, request.path, request.remote,
                    what_is_wrong(exc))  # fmt: skip
        given = body.get("lang")
        text = tr(BAD_REQUEST, normalise(given) if isinstance(given, str) else lang)
        return web.json_response({"ok": False, "text": text}, status=400)


@web.middleware
async def _headers(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """The security headers on every answer, refusals raised as HTTP errors too (401, 403, 400, 404): those skip
    the rest of a middleware that only decorates what the handler returns."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        for key, value in HEADERS.items():
            exc.headers.setdefault(key, value)
        raise
    for key, value in HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def _file(name: str) -> web.Response:
    body = (resources.files("gateway.panel") / "static" / name).read_bytes()
    return web.Response(body=body, headers={"Content-Type": f"{STATIC[name]}; charset=utf-8"})


def _strict_request(text: str) -> Any:
    return strict_json.loads(text, "request")
