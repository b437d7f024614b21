"""Profile matching: the guided conversation, the rules in content, the JSON API over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import Services
from bot.cli import main
from content.loader import load_content
from content.schema import Profile
from handlers.matching import check_examples, match_profile
from storage.models import Inquiry
from tests.conftest import CONTENT
from tests.test_content import content_copy, edit  # noqa: F401 - fixture
from tests.test_local_chat import actions, chat

CONTENT_NOW = load_content(CONTENT)


def applicable(profile: Profile) -> list[int]:
    return [m.measure.number for m in match_profile(CONTENT_NOW, profile, "zh").results]


def test_a_researcher_gets_measure_12_with_the_plans_reason() -> None:
    result = match_profile(CONTENT_NOW, Profile(identity=["researcher"], stage="idea", sector="tech"), "zh")
    first = result.results[0]
    assert first.measure.number == 12
    assert any("3年内保留人事关系" in reason for reason in first.reasons)


def test_a_measure_limited_by_the_plan_is_never_listed_for_others() -> None:
    result = match_profile(CONTENT_NOW, Profile(identity=["gig_worker"], needs=["talent_support"]), "zh")
    assert 12 not in [m.measure.number for m in result.results]
    assert 12 in [m.measure.number for m in result.near_misses], "shown apart, with what would change it"
    assert 6 in [m.measure.number for m in result.results]
    (near,) = [m for m in result.near_misses if m.measure.number == 12]
    assert "科研人员" in near.reasons[0]


@pytest.mark.parametrize(
    ("profile", "must", "must_not"),
    [
        (Profile(identity=["failed_founder"]), [10], [12]),
        (Profile(identity=["returnee"], sector="agriculture"), [13], [10, 12]),
        (Profile(identity=["college_student"], needs=["competition"]), [24, 14], [10, 12]),
        (Profile(needs=["loan"]), [7], [10, 12, 14]),
        (Profile(identity=["sme_owner"], needs=["tech_platform"]), [15, 21], [12]),
    ],
)
def test_profiles_get_the_measures_meant_for_them(profile: Profile, must: list[int], must_not: list[int]) -> None:
    got = applicable(profile)
    assert set(must) <= set(got), got
    assert not set(must_not) & set(got), got


def test_every_result_has_reasons_in_the_users_language() -> None:
    for lang in ("zh", "en", "ko"):
        result = match_profile(CONTENT_NOW, Profile(identity=["returnee"], needs=["loan", "workspace"]), lang)
        assert result.results
        assert all(match.reasons for match in result.results)
    (first,) = match_profile(CONTENT_NOW, Profile(identity=["researcher"]), "en").results[:1]
    assert first.reasons[0].startswith("You are a researcher")


def test_the_content_examples_hold() -> None:
    assert check_examples(CONTENT_NOW) == []


def test_an_edit_that_breaks_matching_is_caught_by_content_check(
    content_copy: Path,  # noqa: F811 - fixture
    capsys: pytest.CaptureFixture[str],
) -> None:
    edit(content_copy / "measures" / "12.yaml", "  identity_required: true\n", "  identity_required: false\n")
    edit(
        content_copy / "measures" / "12.yaml",
        "  identities: [researcher]\n",
        "  identities: [researcher, gig_worker]\n",
    )
    assert main(["content", "check", str(content_copy)]) == 1
    out = capsys.readouterr().out
    assert "measures/12.yaml:" in out and "examples[1]: the example profile gets this measure but should not" in out


async def test_the_guided_profile_conversation_leads_to_a_match(web_client: TestClient, services: Services) -> None:
    (menu,) = await chat(web_client, text="/start")
    assert "match" in actions(menu)
    (intro,) = await chat(web_client, action="match")
    assert "pedit" in actions(intro), "with no profile yet, matching starts the questions"
    (step,) = await chat(web_client, action="pedit")
    assert step["text"].startswith("第1/5题")
    (step,) = await chat(web_client, action="pid:researcher")
    assert "✓ 高校或科研院所的科研人员" in actions(step).values()
    (step,) = await chat(web_client, action="pstep:stage")
    (step,) = await chat(web_client, action="pst:idea")
    assert step["text"].startswith("第3/5题"), "a single choice moves on"
    (step,) = await chat(web_client, action="pstep:district")
    (step,) = await chat(web_client, action="pdi:wendeng")
    (step,) = await chat(web_client, action="pne:talent_support")
    assert "✓ 人才政策" in actions(step).values()
    (result,) = await chat(web_client, action="match")
    assert result["text"].startswith("这些措施可能适合你")
    assert "1. 第12条：支持科技人才创新创业" in result["text"]
    assert "仅供参考" in result["text"] and "由谁审核：市人力资源社会保障局" in result["text"]
    assert "m:12" in actions(result)
    (summary,) = await chat(web_client, text="/profile")
    assert "文登区" in summary["text"]
    await services.inquiries.flush()
    async with services.db.session() as session:
        logged = (await session.scalars(select(Inquiry).where(Inquiry.kind == "match"))).one()
    assert logged.profile["identity"] == ["researcher"]
    assert logged.district == "wendeng"
    assert logged.results[0] == {"measure": 12, "rank": 1, "score": logged.results[0]["score"]}


async def test_forged_profile_payloads_are_refused_politely(web_client: TestClient) -> None:
    for payload in ["pid:astronaut", "pst:", "pstep:secret", "pne:loan:1", "pdi:beijing"]:
        (reply,) = await chat(web_client, action=payload)
        assert "过期" in reply["text"]


async def test_api_lists_and_serves_measures(web_client: TestClient) -> None:
    response = await web_client.get("/api/measures", params={"lang": "en"})
    assert response.status == 200
    body = await response.json()
    assert [m["number"] for m in body["measures"]] == list(range(1, 25))
    response = await web_client.get("/api/measures/17")
    measure = await response.json()
    assert measure["title"] == "培育建设特色创业街区"
    assert [f["text"] for f in measure["figures"]] == ["20个", "2—3个"]
    assert measure["lead"][0]["name"] == "市人力资源社会保障局"
    assert measure["contacts"] is None and "市人力资源社会保障局" in measure["ask"]
    assert measure["source"]["document"] == "威政办字〔2025〕8号"
    assert (await web_client.get("/api/measures/25")).status == 404
    assert (await web_client.get("/api/measures/abc")).status == 404


async def test_api_search_ranks_measures(web_client: TestClient) -> None:
    response = await web_client.get("/api/search", params={"q": "科研人员能离岗创业吗", "lang": "zh"})
    body = await response.json()
    assert body["kind"] == "measure"
    assert body["results"][0]["measure"] == 12
    response = await web_client.get("/api/search", params={"q": "明天天气"})
    assert (await response.json())["results"] == []


async def test_api_match_answers_ranked_results_with_reasons(web_client: TestClient) -> None:
    profile = {"identity": ["researcher"], "stage": "idea", "sector": "tech", "needs": ["talent_support"]}
    response = await web_client.post("/api/match", json=profile, params={"lang": "en"})
    assert response.status == 200
    body = await response.json()
    assert body["results"][0]["measure"] == 12
    assert body["results"][0]["reasons"] and body["results"][0]["score"] > 0
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert "guidance, not a decision" in body["disclaimer"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"identity": ["astronaut"]}, "identity.0"),
        ({"stage": "retired"}, "stage"),
        ({"favourite_colour": "blue"}, "favourite_colour"),
        ({"needs": "loan"}, "needs"),
    ],
)
async def test_api_refuses_unknown_fields_and_values_naming_the_field(
    web_client: TestClient, body: dict, field: str
) -> None:
    response = await web_client.post("/api/match", json=body)
    assert response.status == 400
    error = await response.json()
    assert error["field"] == field
    assert field in error["error"]


async def test_api_refuses_bad_query_parameters(web_client: TestClient) -> None:
    response = await web_client.get("/api/measures", params={"lang": "fr"})
    assert response.status == 400
    assert (await response.json())["field"] == "lang"
    response = await web_client.get("/api/search", params={"q": "贷款", "page": "2"})
    assert (await response.json())["field"] == "page"
    response = await web_client.post("/api/match", data=b"not json")
    assert response.status == 400


async def test_the_openapi_document_describes_the_api(web_client: TestClient) -> None:
    response = await web_client.get("/api/openapi.json")
    spec = await response.json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/api/measures", "/api/measures/{number}", "/api/search", "/api/match"}
    profile = spec["components"]["schemas"]["Profile"]
    assert profile["additionalProperties"] is False
    assert "researcher" in str(profile)
    assert "MatchResponse" in spec["components"]["schemas"]
