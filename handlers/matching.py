"""Matching a founder's profile to the measures that apply, with the reasons, from rules in the content.

A measure applies when the profile meets its hard conditions (a required identity, no excluded
identity: only what the plan itself limits) and shares something with it (an identity, a
need or a favoured sector); a suitable stage ranks it higher. One that is relevant but fails
a hard condition is a near miss, shown apart with what would change the answer. No measure
is coded here: everything comes from its `match` rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from content.loader import Content, ContentError, locate
from content.schema import MatchRules, Measure, Profile
from handlers.i18n import gettext_for
from handlers.vocabulary import label

WEIGHTS = {"identity": 3.0, "need": 2.0, "sector": 1.0, "stage": 0.5}
REQUIRED_BONUS = 1.0


@dataclass
class MeasureMatch:
    measure: Measure
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class MatchResult:
    results: list[MeasureMatch]
    near_misses: list[MeasureMatch]


def match_profile(content: Content, profile: Profile, lang: str) -> MatchResult:
    """The measures that apply to `profile`, best first, and the near misses, each with reasons in `lang`."""
    results, near_misses = [], []
    for measure in content.measures.values():
        rules = measure.match
        matched = _matched_conditions(rules, profile)
        if not any(kind in ("identity", "need", "sector") for kind, _ in matched):
            continue
        blockers = _blockers(rules, profile)
        if blockers:
            reasons = [_near_miss_reason(measure, blockers, lang)]
            near_misses.append(MeasureMatch(measure, _score(rules, matched), reasons))
        else:
            reasons = [_reason(measure, kind, value, lang) for kind, value in matched]
            results.append(MeasureMatch(measure, _score(rules, matched), reasons))
    results.sort(key=lambda m: (-m.score, m.measure.number))
    near_misses.sort(key=lambda m: (-m.score, m.measure.number))
    return MatchResult(results, near_misses)


def _matched_conditions(rules: MatchRules, profile: Profile) -> list[tuple[str, str]]:
    matched = [("identity", v) for v in profile.identity if v in rules.identities]
    matched += [("need", v) for v in profile.needs if v in rules.needs]
    if profile.sector is not None and profile.sector in rules.sectors:
        matched.append(("sector", profile.sector))
    if profile.stage is not None and profile.stage in rules.stages:
        matched.append(("stage", profile.stage))
    return matched


def _blockers(rules: MatchRules, profile: Profile) -> list[str]:
    """The hard conditions the profile does not meet: 'identity' or 'excluded'."""
    blockers = []
    if rules.identity_required and not set(profile.identity) & set(rules.identities):
        blockers.append("identity")
    if set(profile.identity) & set(rules.exclude_identities):
        blockers.append("excluded")
    return blockers


def _score(rules: MatchRules, matched: list[tuple[str, str]]) -> float:
    score = sum(WEIGHTS[kind] for kind, _ in matched)
    return score + (REQUIRED_BONUS if rules.identity_required else 0.0)


def _reason(measure: Measure, kind: str, value: str, lang: str) -> str:
    """The content's reason for this condition, or a plain one naming what matched."""
    own = measure.match.reasons.get(f"{kind}:{value}")
    if own is not None:
        return own.get(lang)
    _ = gettext_for(lang)
    generic = {
        "identity": _("You are: {value}. Measure {number} is meant for you."),
        "need": _("You need: {value}. Measure {number} serves that."),
        "sector": _("Your sector: {value}. Measure {number} favours it."),
        "stage": _("Your stage: {value}. Measure {number} suits it."),
    }
    return generic[kind].format(value=label(value, lang), number=measure.number)


def _near_miss_reason(measure: Measure, blockers: list[str], lang: str) -> str:
    rules = measure.match
    if rules.near_miss is not None:
        return rules.near_miss.get(lang)
    _ = gettext_for(lang)
    sep = _(", ")
    if "identity" in blockers:
        who = sep.join(label(v, lang) for v in rules.identities)
        return _("Measure {number} is for: {who}.").format(number=measure.number, who=who)
    return _("Measure {number} does not cover your situation.").format(number=measure.number)


def check_examples(content: Content) -> list[ContentError]:
    """Every measure's example profiles must (or must not) get that measure: run by `content check`
    and before a reload goes live, so an edit that breaks matching is caught."""
    errors = []
    for measure in content.measures.values():
        for i, example in enumerate(measure.examples):
            result = match_profile(content, example.profile, "en")
            applies = any(m.measure.number == measure.number for m in result.results)
            if applies != example.applies:
                problem = "should get this measure but does not"
                if not example.applies:
                    problem = "gets this measure but should not"
                errors.append(locate(content, measure.number, ("examples", i), f"the example profile {problem}"))
    return errors
