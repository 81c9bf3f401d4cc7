"""The codes a crisis resource is filed under: ISO 3166-1 alpha-2 countries, ISO 3166-2
subdivisions and BCP 47 language tags, checked here without a library.

The countries are ISO 3166-1's officially assigned alpha-2 codes (249, as tzdata's public-domain
`iso3166.tab` lists them): a code outside it (`UK`, `EU`, a typo) is refused, so a resource is
never filed where no person's country will ever match it. A subdivision is checked for its form
(`GB-SCT`, `ES-CT`, `US-CA`) and its country prefix, not against ISO 3166-2's list (which
changes every year and is not free to redistribute). A language tag must be well-formed per
RFC 5646 §2.1 (language, script, region, variants, extensions, private use; not the
grandfathered irregular tags) and is stored in its canonical case (`es-MX`, `zh-Hant-TW`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

COUNTRIES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - the table as tzdata prints it, checkable by eye
)
#: Codes people reach for that ISO 3166-1 does not assign, and the one they mean.
_INSTEAD = {"UK": "GB", "EL": "GR"}

_SUBDIVISION = re.compile(r"^([A-Z]{2})-[A-Z0-9]{1,3}$")

# RFC 5646 §2.1 langtag (case-insensitive): language ["-" script] ["-" region] *("-" variant)
# *("-" extension) ["-" privateuse]; or a private-use tag alone.
_LANGTAG = re.compile(
    r"""^(?:
        (?P<language>[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})
        (?:-(?P<script>[a-z]{4}))?
        (?:-(?P<region>[a-z]{2}|[0-9]{3}))?
        (?P<variants>(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*)
        (?P<extensions>(?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*)
        (?:-x(?:-[a-z0-9]{1,8})+)?
        |x(?:-[a-z0-9]{1,8})+
    )$""",
    re.IGNORECASE | re.VERBOSE,
)


def country(code: str) -> str:
    """An assigned ISO 3166-1 alpha-2 code, upper case; ValueError naming the fix otherwise."""
    value = code.strip().upper()
    if value in _INSTEAD:
        raise ValueError(f"not an ISO 3166-1 code: use {_INSTEAD[value]}")
    if value not in COUNTRIES:
        raise ValueError("not an assigned ISO 3166-1 alpha-2 country code")
    return value


def subdivision(code: str, of_country: str | None) -> str:
    """An ISO 3166-2 subdivision code of `of_country`, upper case."""
    value = code.strip().upper()
    match = _SUBDIVISION.fullmatch(value)
    if match is None:
        raise ValueError("not an ISO 3166-2 subdivision code (e.g. GB-SCT)")
    if of_country is not None and match.group(1) != of_country:
        raise ValueError("a subdivision of another country")
    return value


def language(tag: str) -> str:
    """A well-formed BCP 47 tag in canonical case (`en`, `es-419`, `zh-Hant-TW`)."""
    value = tag.strip()
    if len(value) > 35 or _LANGTAG.fullmatch(value) is None:
        raise ValueError("not a well-formed BCP 47 language tag (e.g. en, es-MX)")
    first, *rest = value.split("-")
    out = [first.lower()]
    # After a singleton (an extension's or private use's), every subtag is lower case.
    tail = first.lower() == "x"
    for part in rest:
        if tail or len(part) == 1:
            tail = True
            out.append(part.lower())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())  # script
        elif len(part) == 2 and part.isalpha():
            out.append(part.upper())  # region
        else:
            out.append(part.lower())
    return "-".join(out)


def primary(tag: str) -> str:
    """The tag's primary language subtag (`es` of `es-MX`): what "the person's language" means."""
    return tag.split("-", 1)[0].lower()


#: A check of one code: the code in canonical form, or ValueError saying what is wrong.
Check = Callable[[str], str]
