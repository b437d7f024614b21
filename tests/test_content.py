"""The content folder: all of the final plan, validated, with clear errors for broken edits."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from content.loader import ContentInvalid, check_content, load_content
from content.schema import squash
from content.store import ContentStore
from tests.conftest import CONTENT

PLAN_TEXT = squash((CONTENT / "source" / "action-plan-final-2025.txt").read_text(encoding="utf-8"))


@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(CONTENT, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_all_24_measures_and_7_plans_come_from_the_final_plan() -> None:
    content = load_content(CONTENT)
    assert sorted(content.measures) == list(range(1, 25))
    assert sorted(content.plans) == list(range(1, 8))
    for number, measure in content.measures.items():
        assert squash(measure.source.text).startswith(f"{number}.")
        assert squash(measure.source.text) in PLAN_TEXT
        assert squash(measure.title.zh) in squash(measure.source.text)
        assert content.measures_of(measure.plan)


def test_city_targets_carry_the_final_figures_not_the_drafts() -> None:
    targets = {t.quote.replace(" ", ""): t.value for t in load_content(CONTENT).targets.targets}
    assert targets["扶持创业1.9万人以上"] == 19000
    assert targets["带动就业5万人以上"] == 50000
    assert targets["新发放创业担保贷款6亿元以上"] == 600_000_000
    assert 16000 not in targets.values()
    assert 40000 not in targets.values()


def test_departments_match_the_brackets_of_the_plan() -> None:
    content = load_content(CONTENT)
    seven = content.measures[7].departments
    assert seven.shared == ["pboc_weihai", "finance", "hrss", "market_regulation", "nfra_weihai"]
    twelve = content.measures[12].departments
    assert (twelve.lead, twelve.support) == (["hrss"], ["education", "science_technology"])
    for measure in content.measures.values():
        bracket = measure.source.text.rsplit("（", 1)[1]
        for dept_id in measure.departments.lead + measure.departments.support + measure.departments.shared:
            assert content.departments[dept_id].name.zh in bracket, (measure.number, dept_id)


def test_the_real_content_passes_the_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["content", "check", str(CONTENT)]) == 0
    assert "content is valid" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("measures/07.yaml", "title:\n  zh: 强化金融服务助力创业\n", "title:\n", "title.zh: this field is required"),
        ("measures/08.yaml", "number: 8\n", "number: 7\n", "number: measure 7 is already defined in measures/07.yaml"),
        (
            "measures/12.yaml",
            "identities: [researcher]",
            "identities: [astronaut]",
            "match.identities[0]: Input should be",
        ),
        ("measures/12.yaml", "lead: [hrss]", "lead: [ministry_of_magic]", "unknown department 'ministry_of_magic'"),
        (
            "measures/12.yaml",
            "quote: 3年内保留其与原单位人事关系",
            "quote: 5年内保留",
            "figures[0].quote: this quote is not in the source text",
        ),
        ("measures/12.yaml", "number: 12\n", "number: 12\nnumber: 13\n", "number: this key is written twice"),
        ("measures/12.yaml", "plan: 4\n", "plan: [4\n", "broken YAML"),
        ("targets.yaml", "quote: 扶持创业 1.9万人以上", "quote: 扶持创业 1.6万人以上", "targets[0].quote: this quote"),
        (
            "messages/not_about_the_plan.txt",
            "# bench/questions.yaml\n",
            "# bench/questions.yaml\n想开个公司  营业执照去哪办\n",
            "also in about_the_plan.txt (line",
        ),
    ],
)
def test_check_reports_each_broken_edit_with_file_line_and_field(
    content_copy: Path, file: str, old: str, new: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(content_copy / file, old, new)
    errors = check_content(content_copy)
    assert errors, "the broken edit was accepted"
    assert any(expected in str(e) and str(e).startswith(file) for e in errors), [str(e) for e in errors]
    assert all(e.line > 0 for e in errors if e.file == file)
    assert main(["content", "check", str(content_copy)]) == 1
    out = capsys.readouterr().out
    assert f"{file}:" in out


def test_a_wrong_line_number_points_at_the_broken_field(content_copy: Path) -> None:
    path = content_copy / "measures" / "12.yaml"
    edit(path, "identities: [researcher]", "identities: [astronaut]")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "astronaut" in text)
    (error,) = check_content(content_copy)
    assert error.line == line


def test_a_quote_that_is_not_in_the_final_plan_is_refused(content_copy: Path) -> None:
    edit(content_copy / "measures" / "12.yaml", "作为其职称评审", "作为其职务评审")
    errors = [str(e) for e in check_content(content_copy)]
    assert any("source.text: this text is not in the final plan" in e for e in errors), errors


def test_a_missing_measure_is_reported(content_copy: Path) -> None:
    (content_copy / "measures" / "24.yaml").unlink()
    assert [str(e) for e in check_content(content_copy)] == ["measures: (file): measures missing: 24"]


def test_the_command_line_entry_point_exits_non_zero_on_problems(content_copy: Path) -> None:
    edit(content_copy / "plans.yaml", "  - number: 7\n", "  - number: 8\n")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "content", "check", str(content_copy)],
        capture_output=True,
        text=True,
        check=False,
        cwd=CONTENT.parent,
    )
    assert result.returncode == 1
    assert "plans.yaml:" in result.stdout
    assert "plans[6].number" in result.stdout


async def test_a_broken_edit_is_refused_and_the_last_good_content_keeps_serving(content_copy: Path) -> None:
    store = ContentStore(content_copy)
    good = store.load()
    edit(content_copy / "measures" / "07.yaml", "number: 7\n", "number: seven\n")
    errors = await store.reload()
    assert errors
    assert "measures/07.yaml" in str(errors[0])
    assert store.current is good
    edit(content_copy / "measures" / "07.yaml", "number: seven\n", "number: 7\n")
    edit(content_copy / "measures" / "07.yaml", "zh: 强化金融服务助力创业", "zh: 强化金融服务助力创业（已更新）")
    with pytest.raises(ContentInvalid, match=r"title\.zh"):
        load_content(content_copy)  # the Chinese title must stay the plan's own wording
    edit(content_copy / "measures" / "07.yaml", "zh: 强化金融服务助力创业（已更新）", "zh: 强化金融服务助力创业")
    edit(content_copy / "measures" / "07.yaml", "summary:\n  zh: ", "summary:\n  zh: 【更新】")
    assert await store.reload() == []
    assert store.current is not good
    assert store.current.measures[7].summary.zh.startswith("【更新】")


async def test_the_watcher_reloads_when_a_file_changes(content_copy: Path) -> None:
    store = ContentStore(content_copy)
    store.load()
    watcher = asyncio.create_task(store.watch(debounce_ms=50))
    await asyncio.sleep(0.3)
    try:
        edit(content_copy / "measures" / "12.yaml", "summary:\n  zh: ", "summary:\n  zh: 【新】")
        for _ in range(100):
            if store.current.measures[12].summary.zh.startswith("【新】"):
                break
            await asyncio.sleep(0.05)
        assert store.current.measures[12].summary.zh.startswith("【新】")
    finally:
        watcher.cancel()
