"""The command line: `python -m bot` runs the assistant; subcommands for the shell chat and content checks."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import get_args

from bot.config import Settings
from content.loader import ContentInvalid, check_content


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="The 创业威海 founder assistant.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="serve the local chat (and Telegram when TELEGRAM_BOT_TOKEN is set); the default")
    commands.add_parser("shell", help="chat with the assistant in this terminal")
    content = commands.add_parser("content", help="work with the content files")
    content_commands = content.add_subparsers(dest="content_command", required=True)
    check = content_commands.add_parser("check", help="validate the content folder")
    check.add_argument("path", nargs="?", type=Path, help="folder to check (default: CONTENT_DIR)")
    explain = content_commands.add_parser("explain", help="show how a question is read and answered, and why")
    explain.add_argument("messages", nargs="+", help="the question(s), as a founder would type them")
    explain.add_argument("--path", type=Path, help="content folder (default: CONTENT_DIR)")
    staff = commands.add_parser("staff", help="grant or revoke the staff and admin roles")
    staff_commands = staff.add_subparsers(dest="staff_command", required=True)
    grant = staff_commands.add_parser("grant", help="make a user staff (for districts) or admin")
    revoke = staff_commands.add_parser("revoke", help="take a user's role away")
    for sub in (grant, revoke):
        sub.add_argument("--channel", required=True, choices=["telegram", "wechat", "web", "shell"])
        sub.add_argument("--user", required=True, help="their id on that channel (Telegram user id, WeChat OpenID)")
    grant.add_argument("--role", choices=["staff", "admin"], default="staff")
    grant.add_argument("--districts", default="", help="comma-separated districts for staff, e.g. huancui,wendeng")
    staff_commands.add_parser("list", help="list staff and admins (by pseudonym)")
    admin = commands.add_parser("admin", help="dashboard admin accounts (/admin)")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_commands.add_parser("create", help="create a dashboard admin; asks for the password")
    create.add_argument("username")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    report = commands.add_parser("report", help="print the demand report of a period")
    report.add_argument("--since", required=True, type=date.fromisoformat, help="first day, YYYY-MM-DD")
    report.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD (default: today)")
    report.add_argument("--format", choices=["table", "csv", "json"], default="table")
    wechat = commands.add_parser("wechat", help="WeChat Official Account tools")
    wechat_commands = wechat.add_subparsers(dest="wechat_command", required=True)
    menu = wechat_commands.add_parser("menu", help="print the custom menu JSON; --install creates it on the account")
    menu.add_argument("--install", action="store_true", help="install it (needs WECHAT_TOKEN, APPID and APP_SECRET)")
    args = parser.parse_args(argv)

    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.command == "content" and args.content_command == "explain":
        return content_explain(args.path or settings.content_dir, args.messages)
    if args.command == "content":
        return content_check(args.path or settings.content_dir)
    if args.command == "staff":
        return _run(_staff(settings, args))
    if args.command == "admin":
        return _admin_create(settings, args)
    if args.command == "report":
        return _run(_report(settings, args))
    if args.command == "wechat":
        return wechat_menu(settings, args.install)
    if args.command == "shell":
        logging.getLogger().setLevel(logging.WARNING)
        return _run(_shell(settings))
    return _run(_serve(settings))


def content_check(folder: Path) -> int:
    from handlers.i18n import catalog_problems
    from handlers.matching import check_examples

    errors = [str(error) for error in check_content(folder, [check_examples])] + catalog_problems()
    for error in errors:
        print(error)
    if errors:
        print(f"{len(errors)} problem(s) in {folder} and the catalogs", file=sys.stderr)
        return 1
    print(f"{folder}: content is valid")
    return 0


def content_explain(folder: Path, messages: list[str]) -> int:
    """What an admin needs to see to fix an answer: the words read, the matches, what kept measures out."""
    from content.loader import load_content
    from handlers.search import QuestionIndex

    try:
        index = QuestionIndex(load_content(folder))
    except ContentInvalid as exc:
        print(exc)
        return 1
    for message in messages:
        print("\n".join(index.explain(message)), end="\n\n")
    return 0


def wechat_menu(settings: Settings, install: bool) -> int:
    import json

    from bot.channels.wechat import custom_menu, install_menu

    print(json.dumps(custom_menu(), ensure_ascii=False, indent=2))
    if not install:
        return 0
    config = settings.wechat()
    if config is None or not config.app_secret:
        print("set WECHAT_TOKEN, WECHAT_APPID and WECHAT_APP_SECRET to install the menu", file=sys.stderr)
        return 2

    async def install_now() -> dict:
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            return await install_menu(config, session)

    answer = asyncio.run(install_now())
    print(f"WeChat answered: {answer}")
    return 0 if answer.get("errcode", 0) == 0 else 1


def _run(coroutine) -> int:
    try:
        asyncio.run(coroutine)
    except ContentInvalid as exc:
        print("The content folder has problems; fix them and start again:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


async def _staff(settings: Settings, args: argparse.Namespace) -> None:
    from content.schema import District
    from storage.announcements import AnnouncementStore
    from storage.db import Database
    from storage.users import Pseudonymizer

    db = Database(settings.database_url, schema=settings.database_schema)
    await db.migrate()
    store = AnnouncementStore(db)
    try:
        if args.staff_command == "list":
            for pseudonym, channel, role, districts in await store.staff():
                print(f"{pseudonym}  {channel:8}  {role:5}  {','.join(districts or []) or 'all districts'}")
            return
        pseudonym = Pseudonymizer(settings.pseudonymisation_key())(args.channel, args.user)
        if args.staff_command == "revoke":
            await store.grant(pseudonym, args.channel, None)
            print(f"revoked the role of {pseudonym}")
            return
        districts = [d for d in args.districts.split(",") if d]
        unknown = sorted(set(districts) - set(get_args(District)))
        if unknown or (args.role == "staff" and not districts):
            raise SystemExit(f"staff need --districts from: {', '.join(get_args(District))}")
        await store.grant(pseudonym, args.channel, args.role, districts)
        print(f"{pseudonym} is now {args.role}" + (f" for {', '.join(districts)}" if districts else ""))
    finally:
        await db.close()


def _admin_create(settings: Settings, args: argparse.Namespace) -> int:
    import getpass

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password (at least 12 characters): ")
        if getpass.getpass("The same again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2
    return _run(_admin(settings, args.username, password))


async def _admin(settings: Settings, username: str, password: str) -> None:
    from storage.admins import AdminError, create_admin_command
    from storage.db import Database

    db = Database(settings.database_url, schema=settings.database_schema)
    await db.migrate()
    try:
        print(await create_admin_command(db, username, password))
    except AdminError as exc:
        raise SystemExit(f"refused: {exc}") from None
    finally:
        await db.close()


async def _report(settings: Settings, args: argparse.Namespace) -> None:
    from content.loader import load_content
    from storage.db import Database
    from storage.reports import Period, demand_report, to_csv, to_json, to_table

    until = (args.until or datetime.now(UTC).date()) + timedelta(days=1)
    period = Period(datetime.combine(args.since, time(), UTC), datetime.combine(until, time(), UTC))
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        await db.migrate()
        report = await demand_report(db, period, load_content(settings.content_dir))
    finally:
        await db.close()
    render = {"table": to_table, "csv": to_csv, "json": to_json}[args.format]
    sys.stdout.write(render(report))


async def _serve(settings: Settings) -> None:
    from bot.app import serve

    await serve(settings)


async def _shell(settings: Settings) -> None:
    from bot.app import Services
    from bot.channels.shell import run_shell

    services = await Services.start(settings)
    try:
        await run_shell(services.assistant)
    finally:
        await services.close()
