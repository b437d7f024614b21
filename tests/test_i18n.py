"""Catalogs and the formatting of the plan's figures."""

from __future__ import annotations

import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.config import PROJECT_ROOT
from content.loader import load_content
from handlers.i18n import LOCALES_DIR, format_amount, format_number
from tests.conftest import CONTENT


@pytest.mark.parametrize(
    ("value", "lang", "expected"),
    [
        (19000, "zh", "1.9万"),
        (50000, "zh", "5万"),
        (600_000_000, "zh", "6亿"),
        (1_500_000_000, "zh", "15亿"),
        (1000, "zh", "1,000"),
        (19000, "en", "19,000"),
        (600_000_000, "en", "600 million"),
        (1_500_000_000, "en", "1.5 billion"),
        (19000, "ko", "1.9만"),
        (12345, "zh", "12,345"),
    ],
)
def test_numbers_are_written_the_way_the_plan_writes_them(value: float, lang: str, expected: str) -> None:
    assert format_number(value, lang) == expected


def test_a_range_and_qualifiers() -> None:
    streets = load_content(CONTENT).measures[17].figures
    assert [format_amount(f, "zh") for f in streets] == ["20个", "2—3个"]


def code_messages() -> set[str]:
    found = set()
    for folder in ("bot", "handlers"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            PROJECT_ROOT / folder, keywords={"_": None, "N_": None}, comment_tags=()
        ):
            found.add(message)
    return found


@pytest.mark.parametrize("locale", ["zh_Hans", "en", "ko"])
def test_every_catalog_translates_every_ui_string(locale: str) -> None:
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        catalog = read_po(fp)
    entries = {m.id: m for m in catalog if m.id}
    missing = sorted(code_messages() - set(entries))
    assert not missing, f"run the catalog update (see README); not in the catalog: {missing}"
    untranslated = [m.id for m in entries.values() if not m.string]
    assert not untranslated
    assert not [m.id for m in entries.values() if m.fuzzy], "fuzzy entries must be reviewed"
    assert not catalog.obsolete, "obsolete entries must be removed"
    placeholders = re.compile(r"{\w+}")
    broken = [m.id for m in entries.values() if set(placeholders.findall(m.id)) != set(placeholders.findall(m.string))]
    assert not broken, f"translations must keep every placeholder: {broken}"
