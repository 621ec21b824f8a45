"""The README and the pages under docs/: every relative link resolves, and the README stays short.

A relative link (`[text](path)`, `![alt](path)` or a reference definition `[name]: path`, with
an optional `#anchor`) must name an existing file or directory inside the repository, and an
anchor must be a heading (GitHub's slug) or an HTML id of the Markdown file it points into.
External http(s) links are not fetched, only checked to be well-formed. Links inside code
(fenced blocks and `inline code`) are not links.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).parents[1]
README_MAX_LINES = 260

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1)(?!\n[ \t]*\n).)+?\1", re.DOTALL)
_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<inner>[^)]*)\)")
_TITLED = re.compile(r"(?P<target>\S+)\s+(\"[^\"]*\"|'[^']*')")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
_HTML_ID = re.compile(r"<[^>]+\b(?:id|name)=\"(?P<id>[^\"]+)\"")


def _blank_fences(text: str) -> str:
    """The text with the lines of fenced code blocks blanked (line numbers kept)."""
    lines, fence = [], None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            lines.append("")
        elif fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return "\n".join(lines)


def _prose(text: str) -> str:
    """The text without code: fenced blocks blanked, inline code spans replaced by spaces."""
    return _INLINE_CODE.sub(lambda m: " " * len(m.group(0)), _blank_fences(text))


def _target(inner: str) -> str:
    """The destination of `(inner)`: without <angle brackets> or a "title"."""
    inner = inner.strip()
    if inner.startswith("<") and inner.endswith(">"):
        return inner[1:-1]
    titled = _TITLED.fullmatch(inner)
    return titled.group("target") if titled else inner


def extract_links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link of a Markdown text, in order."""
    prose = _prose(text)
    found = [(m.start(), _target(m.group("inner"))) for m in _LINK.finditer(prose)]
    found += [(m.start(), m.group("target")) for m in _REFERENCE.finditer(prose)]
    return [(prose.count("\n", 0, start) + 1, target) for start, target in sorted(found)]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown text defines: its headings' slugs (repeats get -1, -2...) and ids."""
    seen: dict[str, int] = {}
    found = {m.group("id") for m in _HTML_ID.finditer(text)}
    for line in _blank_fences(text).splitlines():
        match = _HEADING.match(line)
        if match:
            base = slug(match.group("text").replace("`", ""))
            found.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
    return found


def _external_problem(target: str) -> str | None:
    parts = urlsplit(target)
    if parts.scheme == "mailto":
        return None if re.fullmatch(r"mailto:[^@\s]+@[^@\s]+\.\w+", target) else "malformed"
    if parts.scheme not in ("http", "https"):
        return f"unknown scheme {parts.scheme!r}"
    host = parts.hostname or ""
    if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", host) or " " in target:
        return "malformed URL"
    return None


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the links of one Markdown file (empty when all resolve)."""
    problems = []
    for line, target in extract_links(path.read_text(encoding="utf-8")):
        where = f"{path.relative_to(root)}:{line}: {target!r}"
        if not target:
            problems.append(f"{where}: empty link")
            continue
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target):
            problem = _external_problem(target)
            if problem:
                problems.append(f"{where}: {problem}")
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if file_part.startswith("/") or not resolved.is_relative_to(root.resolve()):
            problems.append(f"{where}: leaves the repository")
        elif not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor:
            if resolved.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(anchor) not in anchors(resolved.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading #{anchor} in {resolved.name}")
    return problems


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page):
    assert broken_links(page) == []


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): "
        "move details to docs/ and link them"
    )


def test_the_checker_finds_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "# Guide\n\n## Set-up: `pip` and torch\n\n## Set-up: `pip` and torch\n", encoding="utf-8"
    )
    (tmp_path / "docs" / "picture.png").write_bytes(b"")
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n"
        "[fine](docs/guide.md), [anchor](docs/guide.md#set-up-pip-and-torch-1), "
        "![img](docs/picture.png)\n"
        "[here](#title) [web](https://example.org/a?b=1#c) [dir](docs/)\n"
        "[missing](docs/nothere.md) ![gone](docs/gone.png)\n"
        "[bad anchor](docs/guide.md#setup) [png anchor](docs/picture.png#x)\n"
        "[bad url](https://exa mple.org) [ftp](ftp://example.org/x) [up](../outside.md)\n"
        "`[code](docs/nothere.md)`\n"
        "```\n[fenced](docs/nothere.md)\n```\n"
        "[ref]: docs/missing-too.md\n",
        encoding="utf-8",
    )
    problems = broken_links(page, root=tmp_path)
    assert [p.split(": ")[1] for p in problems] == [
        "'docs/nothere.md'",
        "'docs/gone.png'",
        "'docs/guide.md#setup'",
        "'docs/picture.png#x'",
        "'https://exa mple.org'",
        "'ftp://example.org/x'",
        "'../outside.md'",
        "'docs/missing-too.md'",
    ], problems
    assert problems[0].startswith("README.md:4: ")


def test_slugs_follow_github():
    assert slug("Precomputed key-side work: `AttentionMemory`".replace("`", "")) == (
        "precomputed-key-side-work-attentionmemory"
    )
    assert (
        slug("The multi-head wrapper: heads: h, and qkv")
        == "the-multi-head-wrapper-heads-h-and-qkv"
    )
    assert slug("Demo: English → German numbers") == "demo-english--german-numbers"
    assert anchors("# A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1"}
