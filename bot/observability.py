"""Health, Prometheus metrics and log hygiene for operators."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import text

from storage.db import Database

log = logging.getLogger(__name__)


class Metrics:
    """The assistant's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "assistant_updates_total", "Messages and button presses handled", ["channel"], registry=self.registry
        )
        self.errors = Counter(
            "assistant_errors_total", "Messages whose handling failed", ["channel"], registry=self.registry
        )
        self.latency = Histogram(
            "assistant_reply_seconds",
            "Time from a message reaching the core to its replies",
            ["channel"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.deliveries = Counter(
            "assistant_deliveries_total", "Announcement deliveries by outcome", ["status"], registry=self.registry
        )
        self.flood_dropped = Counter(
            "assistant_flood_dropped_total", "Messages dropped by per-user flood control", registry=self.registry
        )

    def handled(self, channel: str, seconds: float, failed: bool) -> None:
        """Count and time one message (the core's `on_handled` hook)."""
        self.updates.labels(channel).inc()
        self.latency.labels(channel).observe(seconds)
        if failed:
            self.errors.labels(channel).inc()

    def delivered(self, status: str) -> None:
        self.deliveries.labels(status).inc()


def add_health_routes(app: web.Application, db: Database, metrics: Metrics) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        try:
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("health check: database unavailable: %s", type(exc).__name__)
            return web.json_response({"status": "unavailable", "database": "down"}, status=503)
        return web.json_response({"status": "ok", "database": "up"})

    async def prometheus(_request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)


class RedactSecrets(logging.Filter):
    """Replaces secrets (bot tokens, keys) in every log record, including third-party libraries'."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, "[secret]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_secrets_in_logs(secrets: Iterable[str]) -> RedactSecrets:
    """Install the filter on every handler of the root logger; httpx's request lines go to WARNING."""
    redactor = RedactSecrets(secrets)
    root = logging.getLogger()
    for handler in root.handlers:
        handler.addFilter(redactor)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return redactor
