"""The README and docs/: every relative link points at a file that exists, and every `#anchor`
at a heading of that file (GitHub's anchors), so moving a section cannot leave a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _prose(text: str) -> str:
    """The page without its code blocks (a shell example's brackets are not links)."""
    return _FENCE.sub("", text)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated heading numbered."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in _prose(page.read_text()).splitlines():
        if not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(page: Path) -> list[str]:
    return [m.group(1) for m in _LINK.finditer(_prose(page.read_text()))]


def resolves(page: Path, target: str) -> bool:
    """A file of this repository (and, with `#anchor`, one of its headings)."""
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.exists() or ROOT not in file.parents:
        return False
    return not anchor or anchor in anchors(file)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    external = re.compile(r"[a-z]+:")  # http(s), mailto: not checked here
    broken = [t for t in links(page) if not external.match(t) and not resolves(page, t)]
    assert broken == [], f"{page.name}: links to nothing"


#: What no page may name: the developers' machine and the reference folder beside the checkout
#: (a user has neither). Spelt in parts so that this file does not name them either.
MACHINE_PATHS = ("/" + "work/", ".." + "/shared")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_page_names_a_machine_path(page: Path) -> None:
    text = page.read_text()
    assert not any(path in text for path in MACHINE_PATHS)
