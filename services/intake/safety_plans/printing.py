"""The person's printable copy of their safety plan: one clean page, as HTML or PDF.

The copy is in the person's language (the screening's, from intake's gettext catalogue under
`services/intake/locale/`; English when there is none) and shows the crisis lines and emergency
numbers of the person's country (`crisis_resources.resources_for`): no number is written here.

Entries are the person's own words: the HTML template escapes everything (Jinja2 autoescape),
and the PDF never drops or replaces a character it cannot draw: without a font that has the
person's script it refuses (`PdfUnavailable`) and the caller offers the HTML copy instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Protocol

from babel.dates import format_date
from babel.support import NullTranslations
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from shared.locales import DEFAULT_LANGUAGE, catalogue, primary

LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
#: The languages a printed plan is written in; any other prints in English.
LANGUAGES = ("en", "es")


def N_(message: str) -> str:
    """Marks a text for the catalogue; translated where it is printed."""
    return message


#: The steps' headings by key (the stored title is English): what the person reads.
STEP_TITLES = {
    "warning_signs": N_("Warning signs that a crisis may be developing"),
    "internal_coping": N_("Internal coping strategies"),
    "social_distraction": N_("People and social settings that provide distraction"),
    "help_contacts": N_("People I can ask for help"),
    "professional_contacts": N_("Professionals or agencies to contact in a crisis"),
    "environment_safety": N_("Making the environment safe"),
    "reason_for_living": N_("The one thing most important to me and worth living for"),
}


class Resource(Protocol):
    """One way to reach a crisis line or emergency service (`CrisisResource`)."""

    name: str
    kind: str
    channel: str
    contact: str
    keyword: str | None
    note: str | None
    hours: str | None
    open_24_7: bool


@cache
def translations(language: str) -> NullTranslations:
    code = primary(language)
    if code == DEFAULT_LANGUAGE or code not in LANGUAGES:
        return NullTranslations()
    return catalogue(LOCALE_DIR / code / "LC_MESSAGES" / "messages.po", code)


def printed_language(language: str | None) -> str:
    """The language the copy is printed in: the person's when there is a catalogue for it."""
    code = primary(language)
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def _way(resource: Resource, _: Any) -> str:
    if resource.channel == "phone":
        return str(_("call %(number)s")) % {"number": resource.contact}
    if resource.channel == "sms":
        if resource.keyword:
            return str(_("text %(keyword)s to %(number)s")) % {
                "keyword": resource.keyword,
                "number": resource.contact,
            }
        return str(_("text %(number)s")) % {"number": resource.contact}
    if resource.channel == "chat":
        return str(_("chat at %(url)s")) % {"url": resource.contact}
    return str(resource.contact)


def crisis_lines(resources: Iterable[Resource], language: str) -> list[tuple[str, str]]:
    """(who, how) per service in the order given: its ways in joined, then its hours and its
    note ("Press 2 for Spanish"), in the person's language where the words are ours."""
    _ = translations(printed_language(language)).ugettext
    services: dict[str, list[Resource]] = {}
    for resource in resources:
        services.setdefault(resource.name, []).append(resource)
    lines = []
    for name, ways in services.items():
        how = ", ".join(_way(way, _) for way in ways)
        first = ways[0]
        if any(way.open_24_7 for way in ways):
            how += f" ({_('24/7')})"
        elif first.hours:
            how += f" ({first.hours})"
        notes = [way.note for way in ways if way.note]
        if notes:
            how += ". " + "; ".join(dict.fromkeys(notes))
        lines.append((name, how))
    return lines


#: Where a Unicode TrueType font usually is, when SAFETY_PLAN_PDF_FONT does not say.
FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
)


class PdfUnavailable(Exception):
    """The plan holds characters no available PDF font can draw; the HTML copy still can."""


def printable(
    doc: dict[str, Any],
    resources: Iterable[Resource] = (),
    language: str | None = None,
) -> dict[str, Any]:
    """What the person's copy shows, in their language: the crisis lines and emergency numbers
    of their country (`resources`, in the order to show them), headings and their entries,
    nothing clinical."""
    lang = printed_language(language)
    _ = translations(lang).ugettext
    steps = []
    for number, step in enumerate(doc["steps"], start=1):
        if not step["required"] and not step["entries"]:
            continue  # the optional "reason for living" is left out until the person names it
        title = _(STEP_TITLES[step["key"]]) if step.get("key") in STEP_TITLES else step["title"]
        heading = f"{number}. {title}" if step["required"] else title
        steps.append({"heading": heading, "entries": [e["text"] for e in step["entries"]]})
    updated = format_date(datetime.fromisoformat(doc["updated_at"]), "long", locale=lang)
    return {
        "lang": lang,
        "draft": doc["status"] != "complete",
        "crisis_lines": crisis_lines(resources, lang),
        "steps": steps,
        "updated": updated,
        "text": {
            "title": _("My safety plan"),
            "draft": _("Draft: not yet reviewed with a clinician."),
            "crisis": _("If I am in crisis or in danger right now"),
            "crisis_label": _("Crisis numbers"),
            "none": _(
                "Call your local emergency number or go to the nearest emergency department."
            ),
            "footer": _("Safety plan (Stanley & Brown), updated %(date)s.") % {"date": updated},
        },
    }


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("services.intake", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(
    doc: dict[str, Any], resources: Iterable[Resource] = (), language: str | None = None
) -> str:
    view = printable(doc, resources, language)
    return _templates().get_template("safety_plan.html").render(**view)


def find_font(configured: str | None) -> Path | None:
    """The configured TrueType font, else the first well-known one present, else None."""
    for candidate in (configured, *FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _all_text(view: dict[str, Any]) -> str:
    parts = [line for pair in view["crisis_lines"] for line in pair]
    parts += view["text"].values()
    for step in view["steps"]:
        parts += [step["heading"], *step["entries"]]
    return "\n".join(parts)


def render_pdf(
    doc: dict[str, Any],
    *,
    font: Path | None,
    resources: Iterable[Resource] = (),
    language: str | None = None,
) -> bytes:
    """An A4 page (more if the person wrote a lot). CPU-bound: call it off the event loop."""
    view = printable(doc, resources, language)
    words = view["text"]
    pdf = FPDF(format="A4")
    pdf.set_title(words["title"])
    pdf.set_lang(view["lang"])
    pdf.set_margins(16, 14, 16)
    pdf.set_auto_page_break(True, margin=14)
    if font is not None:
        bold = font.with_name(f"{font.stem}-Bold{font.suffix}")
        pdf.add_font("plan", "", str(font))
        pdf.add_font("plan", "B", str(bold if bold.is_file() else font))
        family, bullet, dash = "plan", "\u2022", "\u2014"
        drawable = set(pdf.fonts["plan"].cmap) & set(pdf.fonts["planB"].cmap)  # type: ignore[union-attr]
        if any(ord(c) not in drawable for c in _all_text(view) + bullet + dash if c not in "\n\t"):
            raise PdfUnavailable("the PDF font cannot draw every character of the plan")
    else:
        try:
            _all_text(view).encode("latin-1")
        except UnicodeEncodeError as exc:
            raise PdfUnavailable("no PDF font can draw every character of the plan") from exc
        family, bullet, dash = "helvetica", "-", "-"
    pdf.add_page()

    pdf.set_font(family, "B", 18)
    pdf.cell(0, 10, words["title"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if view["draft"]:
        pdf.set_font(family, "", 10)
        pdf.cell(0, 6, words["draft"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)

    # Markdown only here, on our own constant text: the person's entries are drawn verbatim.
    pdf.set_font(family, "", 11)
    # A resource's name and note are an admin's text: markdown's markers in them are escaped.
    crisis = [f"**{words['crisis']}**"]
    crisis += [f"**{_md(name)}**: {_md(how)}" for name, how in view["crisis_lines"]]
    if not view["crisis_lines"]:
        crisis.append(_md(words["none"]))
    pdf.set_line_width(0.6)
    pdf.multi_cell(
        0,
        6.5,
        "\n".join(crisis),
        border=1,
        padding=2,
        align="L",
        markdown=True,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(3)

    for step in view["steps"]:
        pdf.set_font(family, "B", 12)
        pdf.multi_cell(0, 6.5, step["heading"], align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(family, "", 11)
        for text in step["entries"] or [dash]:
            prefix = f"{bullet} " if step["entries"] else ""
            pdf.set_x(pdf.l_margin + 4)
            pdf.multi_cell(0, 5.8, prefix + text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)

    pdf.set_font(family, "", 8)
    pdf.cell(0, 5, words["footer"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def _md(value: str) -> str:
    """`value` safe inside fpdf2's markdown: its markers (doubled characters) made single."""
    for marker in ("**", "__", "--", "~~"):
        while marker in value:
            value = value.replace(marker, marker[0])
    return value
