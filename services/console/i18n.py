"""The console's languages (English, Spanish) and the reader's time zone.

The catalogues are gettext `.po` files under `locale/`, managed by Babel: `messages.pot` is
extracted from the templates and the Python (`python -m services.console.i18n extract`), each
language's `.po` is updated from it (`... update`). They are compiled in memory when the
console starts (Babel's own `read_po` and `write_mo`), so no binary `.mo` is kept in git and a
fresh clone works as it is.

The language of an answer: the signed-in person's own choice (kept in the session), else the
choice made before signing in (a cookie), else the browser's Accept-Language, else English.
Dates and times are shown in the time zone the browser tells (a cookie set by console.js),
else UTC. Both are set per request by `Localize`, and read through context variables by
`_()`, the templates and the date filters.

Only what is shown changes: the forms' field names and values, and so the answers posted to
the services, are the same in every language.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, tzinfo
from functools import cache
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.core import negotiate_locale
from babel.dates import format_date, format_datetime, format_time, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.types import ASGIApp, Receive, Scope, Send

LOCALE_DIR = Path(__file__).parent / "locale"
POT = LOCALE_DIR / "messages.pot"
DEFAULT = "en"
LANGUAGES: dict[str, str] = {"en": "English", "es": "Español"}
#: The choice made before signing in (the session keeps it afterwards); not a secret.
LANGUAGE_COOKIE = "triage_console_lang"
#: The browser's time zone, written by console.js.
TZ_COOKIE = "triage_console_tz"
#: The keywords extraction looks for: `N_` marks a text translated later (module constants).
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}

_language: ContextVar[str] = ContextVar("console_language", default=DEFAULT)
_zone: ContextVar[tzinfo] = ContextVar("console_zone", default=UTC)
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


@cache
def translations(language: str) -> NullTranslations:
    """The language's catalogue, compiled from its .po (English is the source: no catalogue)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT or not po.exists():
        return NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def language() -> str:
    return _language.get()


def zone() -> tzinfo:
    return _zone.get()


def gettext(message: str) -> str:
    return translations(language()).ugettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(language()).ungettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks a text for the catalogue, translated where it is shown."""
    return message


#: The services' values shown as words (risk levels, statuses): the values never change.
LABELS = {
    "imminent": N_("imminent"),
    "high": N_("high"),
    "moderate": N_("moderate"),
    "low": N_("low"),
    "none": N_("none"),
    "open": N_("open"),
    "acknowledged": N_("acknowledged"),
    "resolved": N_("resolved"),
    "failed": N_("failed"),
    "escalated": N_("escalated"),
    "pending": N_("pending"),
    "sent": N_("sent"),
    "delivered": N_("delivered"),
    "completed": N_("completed"),
    "declined": N_("declined"),
    "overdue": N_("overdue"),
    "cancelled": N_("cancelled"),
    "unreachable": N_("unreachable"),
    "undelivered": N_("undelivered"),
    "override": N_("override"),
    "hotline": N_("hotline"),
    "ehr": N_("ehr"),
    "clinician": N_("clinician"),
    "supervisor": N_("supervisor"),
    "admin": N_("admin"),
}


def label(value: object) -> str:
    """A service's value as a word of the reader's language (unknown values as they are)."""
    text = "" if value is None else str(value)
    return gettext(LABELS[text]) if text in LABELS else text


#: A safety plan's steps by key (intake stores their English titles): the person's printed
#: copy shows them in the person's language.
STEP_TITLES = {
    "warning_signs": N_("Warning signs that a crisis may be developing"),
    "internal_coping": N_("Internal coping strategies"),
    "social_distraction": N_("People and social settings that provide distraction"),
    "help_contacts": N_("People I can ask for help"),
    "professional_contacts": N_("Professionals or agencies to contact in a crisis"),
    "environment_safety": N_("Making the environment safe"),
    "reason_for_living": N_("The one thing most important to me and worth living for"),
}


def language_name(tag: str | None) -> str:
    """A BCP 47 tag as the reader says it ('español (México)', 'Spanish (Mexico)')."""
    if not tag:
        return ""
    try:
        return Locale.parse(tag, sep="-").get_display_name(Locale.parse(language())) or tag
    except (ValueError, TypeError):
        return tag


def step_title(step: dict[str, object]) -> str:
    """A plan step's heading in the language being written."""
    key = str(step.get("key") or "")
    return gettext(STEP_TITLES[key]) if key in STEP_TITLES else str(step.get("title") or "")


@contextmanager
def speaking(tag: str | None) -> Iterator[str]:
    """Write in `tag`'s language while inside (a person's printed plan is in their language,
    whoever prints it): its primary subtag when the console has it, else the reader's."""
    primary = (tag or "").split("-", 1)[0].lower()
    token = _language.set(primary) if primary in LANGUAGES else None
    try:
        yield language()
    finally:
        if token is not None:
            _language.reset(token)


def supported(value: str | None) -> str | None:
    return value if value in LANGUAGES else None


def from_header(accept_language: str | None) -> str | None:
    """The browser's preferred language among ours (Accept-Language, by its q values)."""
    if not accept_language:
        return None
    ranked = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            ranked.append((-q, i, tag.strip().replace("-", "_")))
    preferred = [tag for _q, _i, tag in sorted(ranked)]
    return negotiate_locale(preferred, list(LANGUAGES), sep="_")


def zone_named(name: str | None) -> tzinfo:
    if not name or len(name) > 64 or not _ZONE_NAME.match(name):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def session_language(scope: Scope, cookies: dict[str, str]) -> str | None:
    """The signed-in person's choice, from their session."""
    console = getattr(scope["app"].state, "console", None)
    if console is None:
        return None
    user = console.sealer.open(cookies.get(console.cookie))
    return supported(getattr(user, "language", None)) if user else None


class Localize:
    """Sets the answer's language and time zone before anything renders."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.requests import HTTPConnection

        connection = HTTPConnection(scope)
        cookies = connection.cookies
        chosen = (
            session_language(scope, cookies)
            or supported(cookies.get(LANGUAGE_COOKIE))
            or from_header(connection.headers.get("accept-language"))
            or DEFAULT
        )
        language_token = _language.set(chosen)
        zone_token = _zone.set(zone_named(unquote(cookies.get(TZ_COOKIE) or "")))
        try:
            await self.app(scope, receive, send)
        finally:
            _language.reset(language_token)
            _zone.reset(zone_token)


def _moment(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: str | datetime | None) -> str:
    """A moment in the reader's time zone and language: '6 dic 2026 13:26 CST'."""
    if not value:
        return ""
    moment, here, locale = _moment(value), zone(), Locale.parse(language())
    return " ".join(
        (
            format_date(moment.astimezone(here), "medium", locale=locale),
            format_time(moment, "short", tzinfo=here, locale=locale),
            format_datetime(moment, "zzz", tzinfo=here, locale=locale),
        )
    )


def ago(value: str | None, now: datetime | None = None) -> str:
    """'3 minutes ago', 'hace 3 minutos'."""
    if not value:
        return ""
    delta = _moment(value) - (now or datetime.now(UTC))
    if delta.total_seconds() > 0:
        delta = delta * 0
    return format_timedelta(
        delta, add_direction=True, threshold=1.5, granularity="second", locale=language()
    )


def day(value: datetime) -> str:
    """A calendar row's day: 'Sun 6', 'dom 6'."""
    return format_datetime(value, "EEE d", tzinfo=value.tzinfo or UTC, locale=language())


# --- the catalogue: extract, update, check --------------------------------------------------


def extract() -> bytes:
    """The .pot of the sources as they are now (what `messages.pot` must equal)."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    from babel.messages.pofile import write_po

    catalog = Catalog(project="crisis-triage console", charset="utf-8")
    with (LOCALE_DIR / "babel.cfg").open() as cfg:
        method_map, options = parse_mapping_cfg(cfg)
    for filename, lineno, message, comments, context in extract_from_dir(
        Path(__file__).parent,
        method_map=method_map,
        options_map=options,
        keywords=KEYWORDS,
        comment_tags=("Translators:",),
        strip_comment_tags=True,
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    out = io.BytesIO()
    write_po(out, catalog, omit_header=False, sort_output=True, width=100)
    return out.getvalue()


def msgids(pot: bytes) -> set[object]:
    catalog = read_po(io.BytesIO(pot))
    return {m.id for m in catalog if m.id}


def update() -> None:
    """Writes messages.pot from the sources, and merges it into each language's .po."""
    from babel.messages.pofile import write_po

    POT.write_bytes(extract())
    template = read_po(io.BytesIO(POT.read_bytes()))
    for code in LANGUAGES:
        po = LOCALE_DIR / code / "LC_MESSAGES" / "messages.po"
        if code == DEFAULT or not po.exists():
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=code)
        catalog.update(template, no_fuzzy_matching=True)
        with po.open("wb") as target:
            write_po(target, catalog, width=100, ignore_obsolete=True)


if __name__ == "__main__":
    {"extract": lambda: POT.write_bytes(extract()), "update": update}[sys.argv[1]]()
