"""Wiring: content, database, inquiry log and core, and the channels that serve them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from telegram.ext import Application

from bot.api import add_api
from bot.channels import telegram
from bot.channels.web import MAX_BODY_BYTES, add_web_chat
from bot.channels.wechat import CHANNEL as WECHAT
from bot.channels.wechat import WeChatChannel, WeChatSender
from bot.config import Settings
from bot.dashboard import add_dashboard
from bot.delivery import DeliveryWorker
from bot.observability import Metrics, add_health_routes, redact_secrets_in_logs
from content.store import ContentStore
from handlers.core import Assistant
from handlers.flood import FloodControl
from storage.announcements import AnnouncementStore
from storage.db import Database
from storage.inquiry_log import InquiryLog
from storage.users import Pseudonymizer, UserStore

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a channel needs, started and stopped together."""

    settings: Settings
    content: ContentStore
    db: Database
    inquiries: InquiryLog
    assistant: Assistant
    announcements: AnnouncementStore
    metrics: Metrics

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        content = ContentStore(settings.content_dir)
        content.load()
        db = Database(settings.database_url, schema=settings.database_schema)
        await db.migrate()
        inquiries = InquiryLog(db)
        inquiries.start()
        announcements = AnnouncementStore(db)
        assistant = Assistant(
            content,
            UserStore(db),
            inquiries,
            Pseudonymizer(settings.pseudonymisation_key()),
            default_lang=settings.default_lang,
            announcements=announcements,
        )
        assistant.flood = FloodControl(rate=settings.flood_rate, burst=settings.flood_burst)
        metrics = Metrics()
        assistant.on_handled = metrics.handled
        assistant.on_flood = metrics.flood_dropped.inc
        return cls(settings, content, db, inquiries, assistant, announcements, metrics)

    def delivery_worker(self, senders: dict) -> DeliveryWorker:
        """The announcement worker for these channels; an embedded (SQLite) single process reclaims
        its own unfinished deliveries at once, several workers wait for the lease."""
        settings = self.settings
        lease = 0.0 if self.db.is_sqlite else settings.delivery_lease_seconds
        worker = DeliveryWorker(self.announcements, senders, rate=settings.delivery_rate, lease=lease)
        worker.on_outcome = self.metrics.delivered
        self.assistant.on_announcement_queued = worker.wake
        return worker

    async def close(self) -> None:
        await self.inquiries.close()
        await self.db.close()


def web_application(services: Services, telegram_webhook: Application | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    add_web_chat(app, services.assistant)
    add_api(app)
    add_health_routes(app, services.db, services.metrics)
    add_dashboard(app, services)
    if telegram_webhook is not None and services.settings.telegram_webhook_secret is not None:
        telegram.add_webhook_route(app, telegram_webhook, services.settings.telegram_webhook_secret.get_secret_value())
    wechat_config = services.settings.wechat()
    if wechat_config is not None:
        WeChatChannel(services.assistant, wechat_config).add_routes(app)
    return app


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the web server, Telegram (if a token is set) and the content watcher until stopped."""
    stop = stop or _stop_on_signals()
    redact_secrets_in_logs(settings.secrets())
    services = await Services.start(settings)
    bot = None
    senders = {}
    if settings.telegram_bot_token is not None:
        token = settings.telegram_bot_token.get_secret_value()
        bot = telegram.build_application(services.assistant, token, settings.telegram_api_base_url)
    webhook = bot if settings.telegram_webhook_url else None
    runner = web.AppRunner(web_application(services, telegram_webhook=webhook))
    await runner.setup()
    await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    log.info("web server on http://%s:%d/", settings.http_host, settings.http_port)
    if bot is not None and webhook is not None:
        secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else ""
        await telegram.start_webhook(bot, settings.telegram_webhook_url, secret)
        log.info("Telegram: webhook mode")
    elif bot is not None:
        await telegram.start_polling(bot)
        log.info("Telegram: polling for updates")
    if bot is not None:
        senders[telegram.CHANNEL] = telegram.TelegramSender(bot.bot)
    wechat_config = settings.wechat()
    client = None
    if wechat_config is not None and wechat_config.app_secret:
        client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        senders[WECHAT] = WeChatSender(wechat_config, client)
    if wechat_config is not None:
        log.info("WeChat: callback at /wechat")
    tasks = [asyncio.create_task(services.content.watch())] if settings.content_watch else []
    if senders:
        tasks.append(asyncio.create_task(services.delivery_worker(senders).run()))
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if bot is not None:
            await telegram.stop(bot)
        if client is not None:
            await client.close()
        await runner.cleanup()
        await services.close()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
