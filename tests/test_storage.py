"""The inquiry log and users on a real database."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, func, select

from bot.config import Settings
from storage.db import Database
from storage.inquiry_log import InquiryLog, InquiryRecord
from storage.models import Inquiry, QuestionFounder
from storage.users import Pseudonymizer, UserStore


def record(i: int) -> InquiryRecord:
    return InquiryRecord(channel="web", user_pseudonym=f"p{i % 7}", lang="zh", kind="question", text=f"问题 {i}")


async def migrated(settings: Settings) -> Database:
    db = Database(settings.database_url, schema=settings.database_schema)
    await db.migrate()
    return db


async def count(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(Inquiry)) or 0


async def test_close_writes_everything_recorded(settings: Settings) -> None:
    db = await migrated(settings)
    log = InquiryLog(db, batch_size=64)
    log.start()
    for i in range(1000):
        log.record(record(i))
    await log.close()
    assert await count(db) == 1000
    await db.close()


async def test_a_failing_database_delays_the_log_but_loses_nothing(settings: Settings) -> None:
    db = Database(settings.database_url, schema=settings.database_schema)
    log = InquiryLog(db, max_backoff=0.2)
    log.start()
    for i in range(10):
        log.record(record(i))
    await asyncio.sleep(0.5)  # the table does not exist yet: every write fails and is retried
    assert log.pending + 10 >= 10
    await db.migrate()
    await asyncio.wait_for(log.flush(), timeout=10)
    assert await count(db) == 10
    await log.close()
    await db.close()


def test_pseudonyms_are_stable_keyed_and_hide_the_raw_id() -> None:
    one, other = Pseudonymizer(b"k" * 32), Pseudonymizer(b"j" * 32)
    assert one("telegram", "424242") == one("telegram", "424242")
    assert one("telegram", "424242") != one("wechat", "424242")
    assert one("telegram", "424242") != other("telegram", "424242")
    assert "424242" not in one("telegram", "424242")


def test_the_key_is_created_once_and_kept(tmp_path) -> None:
    settings = Settings(pseudonym_key=None, pseudonym_key_file=tmp_path / "key", _env_file=None)
    first = settings.pseudonymisation_key()
    assert len(first) == 64
    assert settings.pseudonymisation_key() == first


async def test_an_unwritable_record_is_dropped_without_blocking_the_others(settings: Settings) -> None:
    db = await migrated(settings)
    log = InquiryLog(db, max_backoff=0.05)
    log.start()
    log.record(record(1))
    log.record(InquiryRecord(channel="web", user_pseudonym="p", lang="zh", kind="match", results=[object()]))
    log.record(record(2))
    await asyncio.wait_for(log.flush(), timeout=10)
    assert await count(db) == 2
    await log.close()
    await db.close()


async def test_a_trickle_of_inquiries_is_written_in_few_transactions(settings: Settings) -> None:
    db = await migrated(settings)
    commits = []
    event.listen(db.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    log = InquiryLog(db, linger=0.5)
    log.start()
    for i in range(20):
        log.record(record(i))
        await asyncio.sleep(0.01)  # one every 10 ms, as updates trickle in
    await asyncio.sleep(0.7)  # past the linger: written without a flush
    assert await count(db) == 20
    assert 1 <= len(commits) <= 2
    await log.close()
    await db.close()


async def test_flush_does_not_wait_for_the_linger(settings: Settings) -> None:
    db = await migrated(settings)
    log = InquiryLog(db, linger=60)
    log.start()
    log.record(record(1))
    await asyncio.wait_for(log.flush(), timeout=10)
    assert await count(db) == 1
    log.record(record(2))
    await asyncio.wait_for(log.close(), timeout=10)
    assert await count(db) == 2
    await db.close()


async def test_forget_takes_the_users_wording_out_of_a_question_group_others_joined(settings: Settings) -> None:
    db = await migrated(settings)
    log = InquiryLog(db)
    log.start()
    asked = {
        "p-founder": "我是小明 哪里可以办理营业执照",
        "p-other": "请问哪里可以办理营业执照",
        "p-alone": "小明的猫丢了",
    }
    for pseudonym, text in asked.items():
        log.record(InquiryRecord("web", pseudonym, "zh", "question", text=text, answered=False))
        await log.flush()
    async with db.session() as session:
        groups = dict((await session.execute(select(Inquiry.user_pseudonym, Inquiry.question_group))).all())
    assert groups["p-founder"] == groups["p-other"] != groups["p-alone"], "the first two are one group"

    await UserStore(db).forget("p-founder")
    await UserStore(db).forget("p-alone")

    async with db.session() as session:
        forms = (await session.scalars(select(QuestionFounder.form))).all()
        other = await session.scalar(select(Inquiry.question_group).where(Inquiry.user_pseudonym == "p-other"))
    assert forms == ["哪里可以办理营业执照"], "no founding wording of a forgotten user is kept"
    assert other is not None, "the remaining question is still grouped"
    await log.close()
    await db.close()


async def test_a_running_log_stops_grouping_by_a_forgotten_founding_wording(settings: Settings) -> None:
    db = await migrated(settings)
    log = InquiryLog(db)
    log.start()
    asked = {"p-founder": "我是小明 哪里可以办理营业执照", "p-other": "请问哪里可以办理营业执照"}
    for pseudonym, text in asked.items():
        log.record(InquiryRecord("web", pseudonym, "zh", "question", text=text, answered=False))
        await log.flush()

    await UserStore(db).forget("p-founder")
    # Alike to the forgotten wording, not to the group's new one.
    log.record(InquiryRecord("web", "p-third", "zh", "question", text="我是小明 哪里可以办理执照", answered=False))
    await log.flush()

    async with db.session() as session:
        groups = dict((await session.execute(select(Inquiry.user_pseudonym, Inquiry.question_group))).all())
    assert groups["p-third"] is not None and groups["p-third"] != groups["p-other"]
    await log.close()
    await db.close()
