"""The person's printable copy of their safety plan: one clean page, as HTML or PDF.

Entries are the person's own words: the HTML template escapes everything (Jinja2 autoescape),
and the PDF never drops or replaces a character it cannot draw: without a font that has the
person's script it refuses (`PdfUnavailable`) and the caller offers the HTML copy instead.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

#: (who, how) on every copy, above the steps: what to do when the plan is not enough.
CRISIS_LINES: tuple[tuple[str, str], ...] = (
    ("988 Suicide & Crisis Lifeline", "call or text 988, or chat at 988lifeline.org (24/7)"),
    ("Emergency services", "call 911 or go to the nearest emergency department"),
)
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


def printable(doc: dict[str, Any]) -> dict[str, Any]:
    """What the person's copy shows: headings and their entries, nothing clinical."""
    steps = []
    for number, step in enumerate(doc["steps"], start=1):
        if not step["required"] and not step["entries"]:
            continue  # the optional "reason for living" is left out until the person names it
        heading = f"{number}. {step['title']}" if step["required"] else step["title"]
        steps.append({"heading": heading, "entries": [e["text"] for e in step["entries"]]})
    return {
        "draft": doc["status"] != "complete",
        "crisis_lines": CRISIS_LINES,
        "steps": steps,
        "updated": datetime.fromisoformat(doc["updated_at"]).strftime("%d %B %Y"),
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


def render_html(doc: dict[str, Any]) -> str:
    return _templates().get_template("safety_plan.html").render(**printable(doc))


def find_font(configured: str | None) -> Path | None:
    """The configured TrueType font, else the first well-known one present, else None."""
    for candidate in (configured, *FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _all_text(view: dict[str, Any]) -> str:
    parts = [line for pair in view["crisis_lines"] for line in pair]
    for step in view["steps"]:
        parts += [step["heading"], *step["entries"]]
    return "\n".join(parts)


def render_pdf(doc: dict[str, Any], *, font: Path | None) -> bytes:
    """An A4 page (more if the person wrote a lot). CPU-bound: call it off the event loop."""
    view = printable(doc)
    pdf = FPDF(format="A4")
    pdf.set_title("My safety plan")
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
    pdf.cell(0, 10, "My safety plan", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if view["draft"]:
        pdf.set_font(family, "", 10)
        pdf.cell(
            0, 6, "Draft: not yet reviewed with a clinician.", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
    pdf.ln(2)

    # Markdown only here, on our own constant text: the person's entries are drawn verbatim.
    pdf.set_font(family, "", 11)
    crisis = ["**If I am in crisis or in danger right now**"]
    crisis += [f"**{name}**: {how}" for name, how in view["crisis_lines"]]
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
    pdf.cell(
        0,
        5,
        f"Safety plan (Stanley & Brown), updated {view['updated']}.",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    return bytes(pdf.output())
