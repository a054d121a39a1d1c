"""The FastAPI app factory."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from relay.api import auth, errors, me, my_data, requests, staff
from relay.api.body_limit import BodyLimit
from relay.api.deps import ShardsDep
from relay.api.shedding import InFlight, IntakeGate
from relay.base import metrics
from relay.base.log import configure
from relay.base.runtime import Runtime, get_runtime, master_address
from relay.base.settings import get_settings
from relay.base.shards import Shards
from relay.pages import privacy


def create_app(runtime: Runtime | None = None, shards: Shards | None = None) -> FastAPI:
    """The API over `runtime`, or over the shards of RELAY_CONFIG's `shards:` map (requests go by school)."""
    if shards is None:
        shards = Shards.one(runtime) if runtime is not None else Shards.configured(get_settings(), get_runtime)
    runtime = shards.default
    configure(runtime.settings.log_level)
    app = FastAPI(
        title="Relay",
        version="0.1.0",
        description="家校消息中转：家长的每个请求都有负责人和回复时间。Parents' requests, routed to the right person on time.",
    )
    app.state.runtime = runtime  # the first shard: settings, which every shard shares but the Redis
    app.state.shards = shards
    metrics.install_collectors(runtime, shards.runtimes)
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
    async def readyz(shards: ShardsDep) -> JSONResponse:
        """200 with the master each shard writes to (`"master": "host:port"`, as Sentinel names it now);
        503 while a master is unknown or does not answer: a school on a shard that is down cannot be served."""
        answers: dict[str, str] = {}
        masters: dict[str, str | None] = {}
        for name, shard in shards.runtimes.items():
            masters[name] = None
            try:
                masters[name] = master_address(shard.redis)
                shard.redis.ping()
                answers[name] = "ok"
            except Exception as exc:  # any failure to reach Redis means not ready
                answers[name] = type(exc).__name__
        broken = next((answer for answer in answers.values() if answer != "ok"), None)
        body: dict[str, object] = {"status": "unavailable" if broken else "ok", "redis": broken or "ok"}
        if shards.single:
            body["master"] = next(iter(masters.values()))
        else:
            body["shards"] = answers
            body["masters"] = masters
        return JSONResponse(body, status_code=503 if broken else 200)

    @app.get("/metrics", tags=["operations"])
    def metrics_endpoint(request: Request) -> Response:  # sync: scrape-time gauges read Redis, off the event loop
        if not metrics.scrape_allowed(request.headers.get("authorization"), runtime.settings.metrics_token):
            return errors.error_response(401, "unauthorized", "/metrics needs the bearer token in RELAY_METRICS_TOKEN",
                                         {"WWW-Authenticate": 'Bearer realm="metrics"'})
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    errors.document_errors(app)  # last: every /v1 route, whoever added it, documents its errors
    return app
