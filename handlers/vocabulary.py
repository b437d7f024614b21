"""Labels of the profile vocabulary (identity, stage, sector, district, needs) in every language."""

from __future__ import annotations

from typing import get_args

from content.schema import District, Identity, Need, Sector, Stage
from handlers.i18n import gettext_for


def N_(message: str) -> str:
    return message


FIELDS: dict[str, tuple[str, ...]] = {
    "identity": get_args(Identity),
    "stage": get_args(Stage),
    "sector": get_args(Sector),
    "district": get_args(District),
    "needs": get_args(Need),
}
MULTIPLE = frozenset({"identity", "needs"})

LABELS: dict[str, str] = {
    "college_student": N_("College student"),
    "graduate": N_("University graduate"),
    "vocational_student": N_("Vocational school student"),
    "researcher": N_("Researcher at a university or institute"),
    "returnee": N_("Returning to my home town"),
    "farmer": N_("Farmer"),
    "veteran": N_("Veteran"),
    "gig_worker": N_("Gig or platform worker"),
    "individual_business": N_("Sole proprietor (个体工商户)"),
    "sme_owner": N_("Small business owner"),
    "high_level_talent": N_("High-level talent or team"),
    "failed_founder": N_("My business failed"),
    "other": N_("Other"),
    "idea": N_("I have an idea"),
    "preparing": N_("Preparing to register"),
    "early": N_("Started within 3 years"),
    "growing": N_("Growing business"),
    "tech": N_("Technology"),
    "manufacturing": N_("Manufacturing"),
    "agriculture": N_("Agriculture"),
    "services": N_("Services"),
    "ecommerce": N_("E-commerce"),
    "culture_tourism": N_("Culture and tourism"),
    "huancui": N_("Huancui District"),
    "wendeng": N_("Wendeng District"),
    "rongcheng": N_("Rongcheng"),
    "rushan": N_("Rushan"),
    "gaoqu": N_("High-tech Zone"),
    "jingqu": N_("Economic and Technological Development Zone"),
    "lingang": N_("Lingang District"),
    "nanhai": N_("Nanhai New Area"),
    "loan": N_("Loans"),
    "investment": N_("Investment"),
    "workspace": N_("Workspace"),
    "training": N_("Training"),
    "mentor": N_("A mentor"),
    "competition": N_("Competitions"),
    "registration": N_("Registering a business"),
    "talent_support": N_("Talent programmes"),
    "tech_platform": N_("Innovation platforms"),
    "industry_links": N_("Industry links"),
    "social_insurance": N_("Social insurance"),
    "branding": N_("Publicity and branding"),
}
FIELD_NAMES: dict[str, str] = {
    "identity": N_("Who you are"),
    "stage": N_("Stage"),
    "sector": N_("Sector"),
    "district": N_("District"),
    "needs": N_("What you need"),
}


def label(value: str, lang: str) -> str:
    return gettext_for(lang)(LABELS[value])


def field_name(field: str, lang: str) -> str:
    return gettext_for(lang)(FIELD_NAMES[field])
