"""The FastAPI app factory."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from relay.api import auth, errors, me, my_data, requests, staff
from relay.api.body_limit import BodyLimit
from relay.api.deps import RuntimeDep
from relay.api.shedding import InFlight, IntakeGate
from relay.base import metrics
from relay.base.log import configure
from relay.base.runtime import Runtime, get_runtime, master_address
from relay.pages import privacy


def create_app(runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or get_runtime()
    configure(runtime.settings.log_level)
    app = FastAPI(
        title="Relay",
        version="0.1.0",
        description="家校消息中转：家长的每个请求都有负责人和回复时间。Parents' requests, routed to the right person on time.",
    )
    app.state.runtime = runtime
    metrics.install_collectors(runtime)
    errors.install(app)
    app.add_middleware(BodyLimit, api_bytes=runtime.settings.max_body_bytes)
    app.state.intake_in_flight = InFlight(runtime.settings.intake_max_in_flight)
    app.add_middleware(IntakeGate, in_flight=app.state.intake_in_flight)  # relay/shedding.py
    app.include_router(requests.router)
    app.include_router(staff.router)
    app.include_router(auth.router)
    app.include_router(my_data.router)
    app.include_router(privacy.router)
    from relay.pages import acknowledge as pages
    from relay.pages import live as events
    from relay.pages import nurse as nurse_pages
    from relay.pages import parent as parent_pages
    from relay.pages import report as report_pages
    from relay.pages import sessions, signin, web
    from relay.pages import staff as staff_pages

    web.install(app)
    sessions.install(app)
    from relay.api import admin as admin_api
    from relay.pages import admin as admin_pages

    app.include_router(admin_api.router)
    admin_pages.install(app)
    app.include_router(me.router)
    for pages_router in (pages.router, signin.router, staff_pages.router, nurse_pages.router, parent_pages.router,
                         events.router, report_pages.router):
        app.include_router(pages_router)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        """200 with the master this process writes to (`"master": "host:port"`, as Sentinel names it now);
        503 while no master is known or it does not answer."""
        master = None
        try:
            master = master_address(runtime.redis)
            runtime.redis.ping()
        except Exception as exc:  # any failure to reach Redis means not ready
            return JSONResponse({"status": "unavailable", "redis": type(exc).__name__, "master": master},
                                status_code=503)
        return JSONResponse({"status": "ok", "redis": "ok", "master": master})

    @app.get("/metrics", tags=["operations"])
    def metrics_endpoint(request: Request) -> Response:  # sync: scrape-time gauges read Redis, off the event loop
        if not metrics.scrape_allowed(request.headers.get("authorization"), runtime.settings.metrics_token):
            return errors.error_response(401, "unauthorized", "/metrics needs the bearer token in RELAY_METRICS_TOKEN",
                                         {"WWW-Authenticate": 'Bearer realm="metrics"'})
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    errors.document_errors(app)  # last: every /v1 route, whoever added it, documents its errors
    return app
