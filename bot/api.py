"""The public JSON API: measures, question answering and profile matching, for a city website or a
WeChat mini-program. Requests and responses are pydantic models; the OpenAPI document is built
from the same models, so it describes exactly what is served."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from bot.channels.web import ASSISTANT_KEY
from content.loader import Content
from content.schema import LANGS, Measure, Profile
from handlers.core import Assistant, match_results
from handlers.i18n import format_amount, gettext_for
from handlers.matching import match_profile
from handlers.search import TARGETS
from storage.inquiry_log import InquiryRecord

CHANNEL = "api"
ANONYMOUS = "anonymous"
DOCUMENT = "威政办字〔2025〕8号"


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Department(Response):
    id: str
    name: str
    name_zh: str


class Figure(Response):
    label: str
    value: float
    value_max: float | None
    unit: str
    qualifier: str
    period: str | None
    text: str
    quote: str


class Source(Response):
    document: str
    plan: int
    measure: int
    text: str


class MeasureSummary(Response):
    number: int
    plan: int
    plan_name: str
    title: str
    summary: str


class MeasureDetail(MeasureSummary):
    audience: str
    offers: list[str]
    figures: list[Figure]
    lead: list[Department]
    support: list[Department]
    shared: list[Department]
    contacts: dict[str, str] | None
    ask: str
    source: Source


class MeasureList(Response):
    lang: str
    measures: list[MeasureSummary]


class SearchResult(Response):
    measure: int | None
    targets: bool
    title: str
    score: float
    matched: list[str]


class SearchResponse(Response):
    query: str
    lang: str
    kind: Literal["measure", "list", "targets", "smalltalk", "none"]
    results: list[SearchResult]


class MatchItem(Response):
    measure: int
    title: str
    reasons: list[str]
    score: float
    decided_by: list[str]


class MatchResponse(Response):
    lang: str
    results: list[MatchItem]
    near_misses: list[MatchItem]
    disclaimer: str


class Error(Response):
    error: str
    field: str | None = None


class ApiError(Exception):
    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


def add_api(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/measures", list_measures)
    app.router.add_get("/api/measures/{number}", get_measure)
    app.router.add_get("/api/search", search)
    app.router.add_post("/api/match", match)
    app.middlewares.append(api_errors)


@web.middleware
async def api_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(Error(error=exc.message, field=exc.field), status=exc.status)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json"), status=status, dumps=_dumps)


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)


def _query(request: web.Request, allowed: set[str]) -> dict[str, str]:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise ApiError(f"unknown query parameter {unknown[0]!r}", field=unknown[0])
    return dict(request.query)


def _lang(query: dict[str, str]) -> str:
    lang = query.get("lang", "zh")
    if lang not in LANGS:
        raise ApiError(f"lang must be one of {', '.join(LANGS)}", field="lang")
    return lang


def _content(request: web.Request) -> tuple[Assistant, Content]:
    assistant = request.app[ASSISTANT_KEY]
    return assistant, assistant.content.current


def _summary(content: Content, measure: Measure, lang: str) -> dict[str, Any]:
    return {
        "number": measure.number,
        "plan": measure.plan,
        "plan_name": content.plans[measure.plan].name.get(lang),
        "title": measure.title.get(lang),
        "summary": measure.summary.get(lang),
    }


def _departments(content: Content, ids: list[str], lang: str) -> list[Department]:
    return [
        Department(id=i, name=content.departments[i].name.get(lang), name_zh=content.departments[i].name.zh)
        for i in ids
    ]


def _detail(content: Content, measure: Measure, lang: str) -> MeasureDetail:
    _ = gettext_for(lang)
    contacts = measure.contacts
    filled = {
        key: value if isinstance(value, str) else value.get(lang)
        for key, value in (
            ("where_to_apply", contacts.where_to_apply),
            ("phone", contacts.phone),
            ("address", contacts.address),
            ("website", contacts.website),
            ("note", contacts.note),
        )
        if value is not None
    }
    responsible = _(", ").join(content.department_names(measure.departments.responsible(), lang))
    return MeasureDetail(
        **_summary(content, measure, lang),
        audience=measure.audience.get(lang),
        offers=[offer.get(lang) for offer in measure.offers],
        figures=[
            Figure(
                label=f.label.get(lang),
                value=f.value,
                value_max=f.value_max,
                unit=f.unit.get(lang),
                qualifier=f.qualifier,
                period=f.period.get(lang) if f.period else None,
                text=format_amount(f, lang),
                quote=f.quote,
            )
            for f in measure.figures
        ],
        lead=_departments(content, measure.departments.lead, lang),
        support=_departments(content, measure.departments.support, lang),
        shared=_departments(content, measure.departments.shared, lang),
        contacts=filled or None,
        ask=responsible,
        source=Source(document=DOCUMENT, plan=measure.plan, measure=measure.number, text=measure.source.text),
    )


async def list_measures(request: web.Request) -> web.Response:
    lang = _lang(_query(request, {"lang"}))
    _assistant, content = _content(request)
    measures = [MeasureSummary(**_summary(content, m, lang)) for m in content.measures.values()]
    return _json(MeasureList(lang=lang, measures=measures))


async def get_measure(request: web.Request) -> web.Response:
    lang = _lang(_query(request, {"lang"}))
    _assistant, content = _content(request)
    number = request.match_info["number"]
    measure = content.measures.get(int(number)) if number.isdigit() and len(number) <= 3 else None
    if measure is None:
        raise ApiError("no such measure: the plan has measures 1 to 24", field="number", status=404)
    return _json(_detail(content, measure, lang))


async def search(request: web.Request) -> web.Response:
    query = _query(request, {"q", "lang"})
    lang = _lang(query)
    text = query.get("q", "").strip()
    if not text:
        raise ApiError("q is required", field="q")
    if len(text) > 500:
        raise ApiError("q must be at most 500 characters", field="q")
    assistant, content = _content(request)
    answer = assistant.content.snapshot.views["search"].answer(text)
    hits = answer.hits if answer.kind in ("measure", "list", "targets") else []
    results = [
        SearchResult(
            measure=None if hit.doc == TARGETS else hit.doc,
            targets=hit.doc == TARGETS,
            title=content.targets.title.get(lang) if hit.doc == TARGETS else content.measures[hit.doc].title.get(lang),
            score=round(hit.score, 2),
            matched=hit.matched,
        )
        for hit in hits
    ]
    _log(assistant, "question", lang, text=text, answered=bool(results), results=[r.model_dump() for r in results])
    return _json(SearchResponse(query=text, lang=lang, kind=answer.kind, results=results))


async def match(request: web.Request) -> web.Response:
    lang = _lang(_query(request, {"lang"}))
    try:
        body = await request.json()
    except (ValueError, RecursionError, LookupError) as exc:
        raise ApiError("the body must be a JSON object of profile fields") from exc
    if not isinstance(body, dict):
        raise ApiError("the body must be a JSON object of profile fields")
    try:
        profile = Profile.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise ApiError(f"{field}: {message}", field=field) from exc
    assistant, content = _content(request)
    result = match_profile(content, profile, lang)
    _log(
        assistant,
        "match",
        lang,
        answered=bool(result.results),
        profile=profile.model_dump(mode="json"),
        results=match_results(result),
        district=profile.district,
    )
    _ = gettext_for(lang)

    def item(m: Any) -> MatchItem:
        return MatchItem(
            measure=m.measure.number,
            title=m.measure.title.get(lang),
            reasons=m.reasons,
            score=m.score,
            decided_by=content.department_names(m.measure.departments.responsible(), lang),
        )

    disclaimer = _(
        "This is guidance, not a decision: the department named on each measure decides whether it applies to you."
    )
    return _json(
        MatchResponse(
            lang=lang,
            results=[item(m) for m in result.results],
            near_misses=[item(m) for m in result.near_misses],
            disclaimer=disclaimer,
        )
    )


def _log(assistant: Assistant, kind: str, lang: str, **fields: Any) -> None:
    assistant.inquiries.record(InquiryRecord(channel=CHANNEL, user_pseudonym=ANONYMOUS, lang=lang, kind=kind, **fields))


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API, from the same models the handlers use."""
    models = [MeasureList, MeasureDetail, SearchResponse, MatchResponse, Profile, Error]
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema

    def ok(model: type[BaseModel], *errors: int) -> dict[str, Any]:
        responses: dict[str, Any] = {
            "200": {"description": "OK", "content": _schema(model.__name__)},
        }
        for status in errors:
            responses[str(status)] = {
                "description": "Bad request" if status == 400 else "Not found",
                "content": _schema("Error"),
            }
        return responses

    lang = {
        "name": "lang",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(LANGS), "default": "zh"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "创业威海 founder assistant API",
            "version": "1",
            "description": f"The 24 measures of the action plan {DOCUMENT}, question answering and profile "
            "matching. Every fact comes from the final plan; results are guidance, not decisions.",
        },
        "paths": {
            "/api/measures": {
                "get": {"summary": "All measures", "parameters": [lang], "responses": ok(MeasureList, 400)}
            },
            "/api/measures/{number}": {
                "get": {
                    "summary": "One measure with figures, departments, contacts and source",
                    "parameters": [
                        {
                            "name": "number",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 24},
                        },
                        lang,
                    ],
                    "responses": ok(MeasureDetail, 400, 404),
                }
            },
            "/api/search": {
                "get": {
                    "summary": "Answer a free-text question, ranked",
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 500},
                        },
                        lang,
                    ],
                    "responses": ok(SearchResponse, 400),
                }
            },
            "/api/match": {
                "post": {
                    "summary": "The measures that apply to a founder's profile, with reasons",
                    "parameters": [lang],
                    "requestBody": {"required": True, "content": _schema("Profile")},
                    "responses": ok(MatchResponse, 400),
                }
            },
        },
        "components": {"schemas": schemas},
    }


def _schema(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
