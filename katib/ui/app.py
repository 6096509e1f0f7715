"""``create_app``: the dashboard as a Starlette application.

Pages (``/``, ``/experiments/{ns}/{name}``, ``/experiments/{ns}/{name}/trials/{trial}``) are
one HTML shell whose JavaScript modules (``static/``) draw the page from the JSON API
(``katib.ui.api``). Plotly's JavaScript is served from the installed ``plotly`` package, so
the dashboard works offline.

Two guards for a server that can start processes on this machine: requests that change
anything must carry the ``X-Katib-UI`` header (a page of another site cannot add it without
a CORS preflight, which this server never grants) and, when an ``Origin`` is sent, come from
this server's own origin; and when bound to a loopback address, only loopback host names are
answered (a DNS-rebinding page cannot reach it under another name).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from katib.errors import AlreadyExistsError, KatibError, NotFoundError, ServiceError, ValidationError
from katib.ui import events
from katib.ui.api import Reader
from katib.ui.backend import ClientFactory, Dashboard, Settings, Unavailable
from katib.ui.cache import ExperimentCache

__all__ = ["create_app", "plotly_js"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
_UI_HEADER = "x-katib-ui"


def plotly_js() -> Path | None:
    """The Plotly bundle shipped inside the installed ``plotly`` package (None without it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=status)


def _handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    async def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ValidationError)
        errors = [{"path": e.path, "message": e.message, "text": str(e)} for e in exc.errors]
        count = len(errors)
        return _error(400, f"invalid experiment ({count} error{'s' if count != 1 else ''})", errors=errors)

    def plain(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handler(request: Request, exc: Exception) -> Response:
            return _error(status, str(exc))
        return handler

    async def bug(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"the dashboard failed on this request ({type(exc).__name__}); the server's log has "
                           "the details")

    return {ValidationError: validation, ValueError: plain(400), NotFoundError: plain(404),
            AlreadyExistsError: plain(409), Unavailable: plain(503), ServiceError: plain(502), KatibError: plain(500),
            Exception: bug}


class _Guard:
    """Refuse changing requests without the dashboard's header or from another origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            origin, host = headers.get("origin"), headers.get("host", "")
            reason = ""
            if headers.get(_UI_HEADER) != "1":
                reason = "a changing request must carry the X-Katib-UI: 1 header (the dashboard's pages send it)"
            elif origin and origin.split("://", 1)[-1] != host:
                reason = f"requests from {origin} may not change anything here"
            if reason:
                await _error(403, reason)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Compress:
    """Gzip answers (Plotly's bundle is 4.8 MB), except the event stream, which must not be
    held back in a compression buffer."""

    def __init__(self, app: ASGIApp) -> None:
        self.plain = app
        self.gzip = GZipMiddleware(app, minimum_size=1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/api/events":
            await self.gzip(scope, receive, send)
        else:
            await self.plain(scope, receive, send)


def create_app(client_factory: ClientFactory, *, backend: str = "local", namespace: str | None = None,
               allow_actions: bool | None = None, read_only_reason: str = "", source: str = "",
               db_manager: str | None = None,
               host: str = "127.0.0.1", poll_interval: float = 1.0, cache_ttl: float | None = None,
               timeout: float = 10.0) -> Starlette:
    """The dashboard over the ``KatibClient`` that ``client_factory()`` returns (opened on
    first use, and again after it failed). Actions are allowed by default locally and only
    with ``allow_actions=True`` on Kubernetes; ``read_only_reason`` tells the pages why not."""
    settings = Settings(backend=backend, namespace=namespace, source=source, db_manager=db_manager,
                        allow_actions=(backend == "local") if allow_actions is None else allow_actions,
                        read_only_reason=read_only_reason, timeout=timeout)
    dashboard = Dashboard(client_factory, settings)
    # The API server lists every trial again on a check (no cheap "what changed" query): less often.
    ttl = cache_ttl if cache_ttl is not None else (1.0 if backend == "local" else 5.0)
    reader = Reader(dashboard, ExperimentCache(dashboard, ttl=ttl))
    shell = (STATIC / "index.html").read_text()

    async def page(request: Request) -> Response:
        return Response(shell, media_type="text/html", headers={"Cache-Control": "no-cache"})

    async def vendor_plotly(request: Request) -> Response:
        path = plotly_js()
        if path is None:
            return Response("/* plotly is not installed: pip install 'katib-lite[ui]' */\n"
                            "window.KATIB_NO_PLOTLY = true;\n", media_type="text/javascript")
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    def json_of(fn: Callable[..., Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            result = await run_in_threadpool(fn, request)
            if isinstance(result, Response):
                return result
            return JSONResponse(result)
        return endpoint

    def ns(request: Request) -> str:
        return str(request.path_params.get("ns") or request.query_params.get("namespace") or dashboard.namespace)

    def allowed() -> None:
        if not settings.allow_actions:
            raise _Forbidden(settings.actions_note)

    async def body_text(request: Request) -> str:
        return (await request.body()).decode("utf-8", errors="replace")

    async def body_json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise ValueError("the request body must be JSON, such as {\"maxTrialCount\": 20}") from None

    async def validate(request: Request) -> Response:
        allowed()
        text = await body_text(request)
        return JSONResponse(await run_in_threadpool(reader.validate, text, request.query_params.get("namespace")))

    async def create(request: Request) -> Response:
        allowed()
        text = await body_text(request)
        created = await run_in_threadpool(reader.create, text, request.query_params.get("namespace"))
        return JSONResponse(created, status_code=201)

    async def budget(request: Request) -> Response:
        allowed()
        body = await body_json(request)
        return JSONResponse(await run_in_threadpool(reader.budget, ns(request), request.path_params["name"], body))

    async def stop(request: Request) -> Response:
        allowed()
        return JSONResponse(await run_in_threadpool(reader.stop, ns(request), request.path_params["name"]))

    async def delete(request: Request) -> Response:
        allowed()
        return JSONResponse(await run_in_threadpool(reader.delete, ns(request), request.path_params["name"]))

    async def figure(request: Request) -> Response:
        p = request.path_params
        text = await run_in_threadpool(reader.figure, ns(request), p["name"], p["kind"], dict(request.query_params))
        return Response(text, media_type="application/json")

    async def stream(request: Request) -> Response:
        return events.stream(reader, request, interval=poll_interval)

    async def forbidden(request: Request, exc: Exception) -> Response:
        return _error(403, str(exc))

    async def not_found_route(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return _error(404, f"no such API endpoint: {request.method} {request.url.path}")
        return await page(request)  # the page says what it cannot find

    routes = [
        Route("/", page), Route("/experiments/{ns}/{name}", page),
        Route("/experiments/{ns}/{name}/trials/{trial}", page),
        Route("/api/info", json_of(lambda r: reader.info())),
        Route("/api/experiments", json_of(lambda r: reader.experiments(
            ns(r), r.query_params.get("status", ""), r.query_params.get("q", "")))),
        Route("/api/experiments", create, methods=["POST"]),
        Route("/api/validate", validate, methods=["POST"]),
        Route("/api/experiments/{ns}/{name}", json_of(lambda r: reader.experiment(
            ns(r), r.path_params["name"], wait=False))),
        Route("/api/experiments/{ns}/{name}", delete, methods=["DELETE"]),
        Route("/api/experiments/{ns}/{name}/budget", budget, methods=["POST"]),
        Route("/api/experiments/{ns}/{name}/stop", stop, methods=["POST"]),
        Route("/api/experiments/{ns}/{name}/trials", json_of(lambda r: reader.trials(
            ns(r), r.path_params["name"], dict(r.query_params)))),
        Route("/api/experiments/{ns}/{name}/trials/{trial}", json_of(lambda r: reader.trial(
            ns(r), r.path_params["name"], r.path_params["trial"]))),
        Route("/api/experiments/{ns}/{name}/figures/{kind}", figure),
        Route("/api/events", stream),
        Route("/static/vendor/plotly.min.js", vendor_plotly),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    def warm() -> None:
        try:
            reader.experiments(dashboard.namespace)  # reads the newest experiments ahead
        except Exception as exc:  # noqa: BLE001 - the pages say what is wrong when they open
            log.info("reading experiments ahead at start failed: %s", exc)
        from katib.visualization.importance import preload

        preload()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        starter = threading.Thread(target=warm, name="katib-ui-start", daemon=True)
        starter.start()
        try:
            yield
        finally:
            # Also when the server could not listen: no thread may be left inside the
            # database driver while the interpreter shuts down.
            await run_in_threadpool(starter.join, 10.0)
            await run_in_threadpool(reader.cache.stop)
            dashboard.close()

    middleware = [Middleware(_Compress), Middleware(_Guard)]
    if host in _LOOPBACK or host.startswith("127."):
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"]))
    handlers = _handlers()
    handlers.update({_Forbidden: forbidden, 404: not_found_route, 405: _method_not_allowed})
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
    app.state.reader = reader
    return app


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return _error(405, f"{request.method} is not allowed on {request.url.path}")


class _Forbidden(KatibError):
    """An action on a dashboard that is read-only."""
