"""Typed models of the content files.

Every YAML file under the content folder is validated against these models once, at
load. The rest of the code only ever sees these objects, never raw dicts.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

LANGS: tuple[str, ...] = ("zh", "en", "ko")
Lang = Literal["zh", "en", "ko"]

Identity = Literal[
    "college_student",
    "graduate",
    "vocational_student",
    "researcher",
    "returnee",
    "farmer",
    "veteran",
    "gig_worker",
    "individual_business",
    "sme_owner",
    "high_level_talent",
    "failed_founder",
    "other",
]
Stage = Literal["idea", "preparing", "early", "growing"]
Sector = Literal["tech", "manufacturing", "agriculture", "services", "ecommerce", "culture_tourism", "other"]
District = Literal["huancui", "wendeng", "rongcheng", "rushan", "gaoqu", "jingqu", "lingang", "nanhai"]
Need = Literal[
    "loan",
    "investment",
    "workspace",
    "training",
    "mentor",
    "competition",
    "registration",
    "talent_support",
    "tech_platform",
    "industry_links",
    "social_insurance",
    "branding",
]
Qualifier = Literal["exactly", "at_least", "not_less_than", "about", "within", "at_most"]

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
DepartmentId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
REASON_KEY = re.compile(r"^(general|(identity|stage|sector|need):[a-z_]+)$")


def squash(text: str) -> str:
    """The text with all white space removed: how quotes are compared with the plan,
    whose PDF extraction breaks lines in the middle of words."""
    return re.sub(r"\s+", "", text)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Model):
    """A text in every language the assistant speaks; all three are required."""

    zh: NonEmpty
    en: NonEmpty
    ko: NonEmpty

    def get(self, lang: str) -> str:
        return getattr(self, lang, None) or self.zh


class AdminText(Model):
    """A text filled by admins (not from the plan). Chinese is enough; others fall back to it."""

    zh: NonEmpty
    en: NonEmpty | None = None
    ko: NonEmpty | None = None

    def get(self, lang: str) -> str:
        return getattr(self, lang, None) or self.zh


class TextList(Model):
    zh: list[NonEmpty] = []
    en: list[NonEmpty] = []
    ko: list[NonEmpty] = []

    def get(self, lang: str) -> list[str]:
        return list(getattr(self, lang, None) or [])


class Figure(Model):
    """One number the plan states: a target, a quota, a period."""

    label: Text
    value: float = Field(gt=0)
    value_max: float | None = Field(default=None, gt=0)
    unit: Text
    qualifier: Qualifier = "exactly"
    period: Text | None = None
    quote: NonEmpty = Field(description="The words of the plan that state this figure, verbatim.")

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Figure:
        if self.value_max is not None and self.value_max <= self.value:
            raise ValueError("value_max must be greater than value")
        return self


class Departments(Model):
    lead: list[DepartmentId] = []
    support: list[DepartmentId] = []
    shared: list[DepartmentId] = Field(default=[], description="按职责分工负责: departments that share the work")

    @model_validator(mode="after")
    def _someone_is_responsible(self) -> Departments:
        if not self.lead and not self.shared:
            raise ValueError("name at least one lead or shared department")
        named = self.lead + self.support + self.shared
        if len(named) != len(set(named)):
            raise ValueError("a department is named twice")
        return self

    def responsible(self) -> list[str]:
        """The departments to ask: the lead, or the sharing ones when there is no lead."""
        return list(self.lead or self.shared)


class Contacts(Model):
    """Where to ask and apply. The plan gives none of this: admins fill it in.

    While it is empty the assistant names the lead department instead.
    """

    where_to_apply: AdminText | None = None
    phone: NonEmpty | None = None
    address: AdminText | None = None
    website: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    note: AdminText | None = None

    def is_empty(self) -> bool:
        return not any((self.where_to_apply, self.phone, self.address, self.website, self.note))


class Profile(Model):
    identity: list[Identity] = []
    stage: Stage | None = None
    sector: Sector | None = None
    district: District | None = None
    needs: list[Need] = []


class MatchRules(Model):
    """Who a measure is for, declared as data for the matching engine."""

    identities: list[Identity] = Field(default=[], description="identities the measure serves")
    identity_required: bool = Field(default=False, description="only the identities listed qualify")
    exclude_identities: list[Identity] = []
    stages: list[Stage] = Field(default=[], description="stages it suits best (ranking only); empty means any")
    sectors: list[Sector] = Field(default=[], description="sectors it favours; empty means any")
    needs: list[Need] = []
    reasons: dict[str, Text] = Field(default={}, description="why it applies, per condition")
    near_miss: Text | None = Field(default=None, description="what would make it apply")

    @field_validator("reasons")
    @classmethod
    def _reason_keys_are_conditions(cls, reasons: dict[str, Text]) -> dict[str, Text]:
        for key in reasons:
            if not REASON_KEY.match(key):
                raise ValueError(
                    f"unknown reason key {key!r}: use 'general' or identity:/stage:/sector:/need: and a value"
                )
        return reasons

    @model_validator(mode="after")
    def _reasons_name_declared_conditions(self) -> MatchRules:
        declared = {f"identity:{v}" for v in self.identities} | {f"stage:{v}" for v in self.stages}
        declared |= {f"sector:{v}" for v in self.sectors} | {f"need:{v}" for v in self.needs} | {"general"}
        unknown = sorted(set(self.reasons) - declared)
        if unknown:
            raise ValueError(f"reasons for conditions the measure does not declare: {', '.join(unknown)}")
        if self.identity_required and not self.identities:
            raise ValueError("identity_required needs at least one identity")
        return self


class Example(Model):
    """A profile and whether this measure must apply to it: run by `content check`."""

    profile: Profile
    applies: bool


class SearchHints(Model):
    keywords: TextList = TextList()
    questions: TextList = TextList()
    not_about: TextList = Field(
        default_factory=TextList,
        description="words that show a message is about something else (a car loan, not a startup loan): "
        "the measure is not offered for a message containing one",
    )


class Source(Model):
    document: Literal["威政办字〔2025〕8号"]
    text: NonEmpty = Field(description="the measure's official wording, quoted from the final plan")


class Measure(Model):
    number: int = Field(ge=1, le=24)
    plan: int = Field(ge=1, le=7)
    title: Text
    summary: Text
    audience: Text
    offers: list[Text] = Field(min_length=1)
    figures: list[Figure] = []
    departments: Departments
    match: MatchRules = MatchRules()
    examples: list[Example] = []
    search: SearchHints = SearchHints()
    contacts: Contacts = Contacts()
    source: Source


class Plan(Model):
    number: int = Field(ge=1, le=7)
    name: Text
    short_name: Text
    summary: Text


class PlansFile(Model):
    plans: list[Plan] = Field(min_length=7, max_length=7)
    coordinator: DepartmentId = Field(description="the department that coordinates the whole plan")


class SynonymsFile(Model):
    """Words founders use for the same thing; in each group the first word is what the others mean."""

    groups: list[Annotated[list[NonEmpty], Field(min_length=2)]]
    asking: list[NonEmpty] = Field(
        default=[],
        description="words that ask about a measure (申请, 条件, apply) rather than say what the message is about: "
        "they neither explain a match nor count against it",
    )
    situation: list[NonEmpty] = Field(
        default=[],
        description="words that tell the founder's situation where no measure is about it (下岗, unemployed): like "
        "asking words, they neither explain a match nor count against it",
    )
    not_about: list[NonEmpty] = Field(
        default=[],
        description="words that show a message is about something other than the plan (创业板 is a stock board): "
        "no measure is offered for a message containing one",
    )
    other_places: list[NonEmpty] = Field(
        default=[],
        description="places that are not Weihai (烟台, Qingdao): a message that names one asks about that place's "
        "policy, unless it names a place in Weihai or says the founder comes from there",
    )
    weihai_places: list[NonEmpty] = Field(default=[], description="Weihai and its districts (威海, 荣成, Rongcheng)")
    coming_from: list[NonEmpty] = Field(
        default=[], description="words that say a founder comes from another place (回, 从, back, from)"
    )


class SmallTalkFile(Model):
    """Phrases that are small talk, not questions: answered with a short friendly reply."""

    greeting: list[NonEmpty]
    thanks: list[NonEmpty]
    goodbye: list[NonEmpty]
    identity: list[NonEmpty]
    filler: list[NonEmpty] = Field(
        default=[], description="words that come with small talk (好嘞, ok) without making it a question"
    )


class LabelledMessages(Model):
    """Messages labelled by whether the plan answers them (content/messages/*.txt, one a line): the assistant
    learns from them to tell a question about something else (a driving school's "培训") from one about the
    plan."""

    about_the_plan: list[NonEmpty] = []
    not_about_the_plan: list[NonEmpty] = []


class Department(Model):
    name: Text


class DepartmentsFile(Model):
    departments: dict[DepartmentId, Department]


class Commitment(Model):
    """A target the plan states without a number."""

    text: Text
    quote: NonEmpty


class TargetsFile(Model):
    """The city-wide targets to 2026 from the plan's preamble."""

    title: Text
    intro: Text
    targets: list[Figure] = Field(min_length=1)
    commitments: list[Commitment] = []
    search: SearchHints = SearchHints()
    source: Source
