"""Languages, message catalogs and locale-aware formatting of the plan's figures.

UI strings are English msgids translated through gettext catalogs under ``locales/``;
content carries its own translations. Catalogs are compiled in memory from the .po
files at start, so a translator only ever edits .po files.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_compact_decimal, format_decimal
from babel.support import NullTranslations, Translations

from content.schema import LANGS, Figure

DEFAULT_LANG = "zh"
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
CATALOG_LOCALE = {"zh": "zh_Hans", "en": "en", "ko": "ko"}
BABEL_LOCALE = {"zh": "zh_Hans_CN", "en": "en", "ko": "ko_KR"}
LANGUAGE_NAMES = {"zh": "中文", "en": "English", "ko": "한국어"}


def normalize_lang(code: str | None) -> str | None:
    """The assistant's language for a code such as 'zh-hans', 'en-US' or 'ko'; None if unsupported."""
    if not code:
        return None
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGS else None


@cache
def translations(lang: str) -> NullTranslations:
    locale = CATALOG_LOCALE.get(lang)
    po_path = LOCALES_DIR / str(locale) / "LC_MESSAGES" / "messages.po"
    if locale is None or not po_path.is_file():
        return NullTranslations()
    with po_path.open("rb") as fp:
        catalog = read_po(fp, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def gettext_for(lang: str):
    return translations(lang).gettext


def format_number(value: float, lang: str) -> str:
    """A figure as the plan would write it: 1.9万 / 6亿 in Chinese, 19,000 / 600 million in English.

    Compact forms are used only where they are exact: Babel rounds 19,000 to "2万"
    by default, which would misstate the plan.
    """
    locale = BABEL_LOCALE.get(lang, BABEL_LOCALE[DEFAULT_LANG])
    number = Decimal(str(value))
    if lang in ("zh", "ko"):
        for unit in (Decimal(100_000_000), Decimal(10_000)):
            if number >= unit and (number / unit * 100) % 1 == 0:
                return format_compact_decimal(number, locale=locale, fraction_digits=2)
    elif number >= 1_000_000 and (number / 1_000_000 * 100) % 1 == 0:
        return format_compact_decimal(number, format_type="long", locale=locale, fraction_digits=2)
    return format_decimal(number, locale=locale)


def format_amount(figure: Figure, lang: str) -> str:
    """The figure's number with its unit and qualifier, e.g. 1.9万人以上 / at least 19,000 people."""
    _ = gettext_for(lang)
    number = format_number(figure.value, lang)
    if figure.value_max is not None:
        number = _("{low}–{high}").format(low=number, high=format_number(figure.value_max, lang))
    amount = _("{number} {unit}").format(number=number, unit=figure.unit.get(lang))
    patterns = {
        "exactly": "{amount}",
        "at_least": _("at least {amount}"),
        "not_less_than": _("no fewer than {amount}"),
        "about": _("about {amount}"),
        "within": _("within {amount}"),
        "at_most": _("no more than {amount}"),
    }
    return patterns[figure.qualifier].format(amount=amount)


def format_figure(figure: Figure, lang: str) -> str:
    """One line for a figure: label, amount and, where the plan states it, the period."""
    _ = gettext_for(lang)
    line = _("{label}: {amount}").format(label=figure.label.get(lang), amount=format_amount(figure, lang))
    if figure.period is not None:
        line = _("{line} ({period})").format(line=line, period=figure.period.get(lang))
    return line


def catalog_problems() -> list[str]:
    """What keeps the catalogs from shipping: UI strings without a translation in some language,
    fuzzy or obsolete entries, translations that lose a placeholder."""
    from babel.messages.extract import extract_from_dir

    root = LOCALES_DIR.parent
    used = {
        message
        for folder in ("bot", "handlers")
        for _file, _line, message, _comments, _context in extract_from_dir(
            root / folder, keywords={"_": None, "N_": None}, comment_tags=()
        )
    }
    placeholder = re.compile(r"{\w+}")
    problems = []
    for locale in CATALOG_LOCALE.values():
        path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as fp:
            catalog = read_po(fp)
        entries = {m.id: m for m in catalog if m.id}
        problems += [
            f"{path.relative_to(root)}: no entry for {m!r} (run the catalog update)"
            for m in sorted(used - set(entries))
        ]
        for m in entries.values():
            if not m.string:
                problems.append(f"{path.relative_to(root)}: not translated: {m.id!r}")
            elif m.fuzzy:
                problems.append(f"{path.relative_to(root)}: fuzzy, needs review: {m.id!r}")
            elif set(placeholder.findall(m.id)) != set(placeholder.findall(m.string)):
                problems.append(f"{path.relative_to(root)}: placeholders differ: {m.id!r}")
        problems += [f"{path.relative_to(root)}: obsolete entry: {m!r}" for m in catalog.obsolete]
    return problems
