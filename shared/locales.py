"""A person's language as a BCP 47 tag, checked against CLDR (Babel).

Plumbing every service needs alike: intake records the language a screening was taken in,
notify matches it with the languages clinicians speak. A tag is accepted when it is
well-formed and Babel knows the locale it names (`en`, `es`, `es-MX`, `es-419`, `fr-CA`), so
a typo (`sp`, `es-XX`) is refused rather than stored where no clinician or crisis line will
ever match it. Tags are kept in BCP 47's canonical case (`es-MX`, `zh-Hant-TW`) and matched on
their primary language subtag: a person who speaks `es-MX` is understood by a clinician who
speaks `es`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

#: The language of a screening that names none, and of an event from before languages.
DEFAULT_LANGUAGE = "en"

# language ["-" script] ["-" region]: what CLDR's locales are named by (no variants or
# extensions: they name nothing a clinician or a crisis line is chosen by).
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?$")


def language_tag(value: str) -> str:
    """`value` as a canonical BCP 47 tag; ValueError (without the value) when it is not one
    that CLDR knows."""
    tag = value.strip()
    if _TAG.fullmatch(tag) is None:
        raise ValueError("not a BCP 47 language tag (e.g. en, es, es-MX)")
    try:
        Locale.parse(tag, sep="-")
    except (UnknownLocaleError, ValueError):
        raise ValueError("not a language tag CLDR knows (e.g. en, es, es-MX)") from None
    first, *rest = tag.split("-")
    parts = [first.lower()]
    for part in rest:
        parts.append(part.title() if len(part) == 4 else part.upper())
    return "-".join(parts)


def primary(tag: str | None) -> str:
    """The primary language subtag (`es` of `es-MX`); the default language for None."""
    return (tag or DEFAULT_LANGUAGE).split("-", 1)[0].lower()


def speaks(languages: list[str] | tuple[str, ...], wanted: str | None) -> bool:
    """Whether any of `languages` is `wanted`'s language (primary subtags compared)."""
    target = primary(wanted)
    return any(primary(tag) == target for tag in languages)


def catalogue(po: Path, language: str) -> NullTranslations:
    """`language`'s gettext catalogue from its `.po` file, compiled in memory by Babel (no
    binary `.mo` kept in git); no catalogue (the source texts) when there is none."""
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as source:
        parsed = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, parsed)
    compiled.seek(0)
    return Translations(compiled)
