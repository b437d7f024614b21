"""Catalogs and the formatting of the plan's figures."""

from __future__ import annotations

import pytest

from content.loader import load_content
from handlers.i18n import LOCALES_DIR, catalog_problems, format_amount, format_number
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


def test_the_catalogs_are_complete() -> None:
    assert catalog_problems() == []


def test_a_missing_translation_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import shutil

    from handlers import i18n

    locales = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, locales)
    (tmp_path / "bot").symlink_to(LOCALES_DIR.parent / "bot")
    (tmp_path / "handlers").symlink_to(LOCALES_DIR.parent / "handlers")
    ko = locales / "ko" / "LC_MESSAGES" / "messages.po"
    ko.write_text(ko.read_text(encoding="utf-8").replace('msgstr "도움말"', 'msgstr ""'), encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALES_DIR", locales)
    assert catalog_problems() == ["locales/ko/LC_MESSAGES/messages.po: not translated: 'Help'"]
