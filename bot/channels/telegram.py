"""Telegram: python-telegram-bot handlers that hand every update to the core and send its replies."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.channels.telegram_http import AiohttpRequest
from bot.delivery import Outcome
from handlers.core import Assistant
from handlers.i18n import gettext_for
from handlers.replies import SORRY, Incoming, Reply, split_text
from handlers.vocabulary import N_

log = logging.getLogger(__name__)

CHANNEL = "telegram"
MESSAGE_LIMIT = 4096


def build_application(assistant: Assistant, token: str, base_url: str) -> Application:
    """The bot's Application, with one handler for text, one for buttons and one for anything else."""
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(base_url.replace("/bot", "/file/bot", 1))
        .concurrent_updates(True)
        .request(AiohttpRequest())
        .get_updates_request(AiohttpRequest(connection_pool_size=1))
        .build()
    )
    application.bot_data["assistant"] = assistant
    application.add_handler(MessageHandler(filters.TEXT, on_text))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(MessageHandler(filters.ALL & ~filters.StatusUpdate.ALL, on_other_message))
    application.add_error_handler(on_error)
    return application


def incoming_from(update: Update, text: str = "", action: str | None = None) -> Incoming:
    user = update.effective_user
    return Incoming(
        channel=CHANNEL,
        user_id=str(user.id if user else update.effective_chat.id),
        text=text,
        action=action,
        language=user.language_code if user else None,
    )


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assistant: Assistant = context.bot_data["assistant"]
    replies = await assistant.handle(incoming_from(update, text=update.effective_message.text or ""))
    await send_replies(context, update.effective_chat.id, replies)


async def on_other_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Photos, stickers, voice...: the core answers that it reads text only."""
    assistant: Assistant = context.bot_data["assistant"]
    await send_replies(context, update.effective_chat.id, await assistant.handle(incoming_from(update)))


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await query.answer()
    assistant: Assistant = context.bot_data["assistant"]
    replies = await assistant.handle(incoming_from(update, action=query.data or ""))
    if query.message is not None and len(replies) == 1 and await _edit_in_place(query, replies[0]):
        return
    await send_replies(context, update.effective_chat.id, replies)


async def _edit_in_place(query, reply: Reply) -> bool:
    """Menus replace the message they were opened from, as long as the reply fits in one message."""
    if len(reply.text) > MESSAGE_LIMIT:
        return False
    try:
        await query.edit_message_text(reply.text, reply_markup=keyboard(reply))
    except BadRequest as exc:
        return "not modified" in str(exc).lower()
    return True


async def send_replies(context: ContextTypes.DEFAULT_TYPE, chat_id: int, replies: list[Reply]) -> None:
    for reply in replies:
        chunks = split_text(reply.text, MESSAGE_LIMIT)
        for i, chunk in enumerate(chunks):
            markup = keyboard(reply) if i == len(chunks) - 1 else None
            await context.bot.send_message(chat_id, chunk, reply_markup=markup)


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.action) for b in row] for row in reply.buttons]
    )


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("error while handling a Telegram update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(update.effective_chat.id, SORRY)
        except TelegramError:
            log.warning("could not tell the user about the error")


WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


COMMANDS = (
    ("start", N_("Main menu")),
    ("match", N_("Find measures for me")),
    ("profile", N_("Your profile")),
    ("targets", N_("City targets to 2026")),
    ("subscribe", N_("Announcements from the service stations")),
    ("lang", N_("Language")),
    ("help", N_("Help")),
    ("forget", N_("Delete my data")),
)


async def publish_commands(application: Application) -> None:
    """The command menu Telegram shows, in each language (Chinese for everyone else)."""
    for lang, code in (("zh", None), ("en", "en"), ("ko", "ko")):
        _ = gettext_for(lang)
        commands = [BotCommand(name, _(description)) for name, description in COMMANDS]
        try:
            await application.bot.set_my_commands(commands, language_code=code)
        except TelegramError:
            log.warning("could not publish the command menu (%s)", lang)


async def start_webhook(application: Application, url: str, secret: str) -> None:
    """Webhook mode: Telegram posts updates to `url`; any number of identical workers can take them."""
    await application.initialize()
    await application.start()
    await publish_commands(application)
    await application.bot.set_webhook(url=url, secret_token=secret, allowed_updates=Update.ALL_TYPES)


def add_webhook_route(app: web.Application, application: Application, secret: str) -> None:
    async def receive(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), secret.encode()):
            log.warning("refused a Telegram webhook request without the secret token from %s", request.remote)
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            return web.Response(status=400)
        if update is None:
            return web.Response(status=400)
        await application.update_queue.put(update)
        return web.Response()

    app.router.add_post(WEBHOOK_PATH, receive)


async def start_polling(application: Application, poll_timeout: float = 10) -> None:
    await application.initialize()
    await application.start()
    await publish_commands(application)
    await application.updater.start_polling(timeout=poll_timeout, drop_pending_updates=False)


async def stop(application: Application) -> None:
    """Stop polling or webhook processing and shut the application down."""
    if application.updater and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()


class TelegramSender:
    """Pushes announcements through the Bot API, turning its errors into delivery outcomes."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, address: str, reply: Reply) -> Outcome:
        try:
            await self.bot.send_message(int(address), reply.text[:MESSAGE_LIMIT], reply_markup=keyboard(reply))
        except RetryAfter as exc:
            retry = exc.retry_after
            return Outcome(
                "retry_after", retry_after=retry.total_seconds() if hasattr(retry, "total_seconds") else retry
            )
        except Forbidden as exc:
            return Outcome("blocked", error=str(exc))
        except (TimedOut, NetworkError) as exc:
            return Outcome("error", error=str(exc))
        except TelegramError as exc:
            return Outcome("failed", error=str(exc))
        return Outcome("sent")
