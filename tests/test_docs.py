"""The documentation: every relative link resolves, every path and module it names exists."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_LIMIT = 10_240
PAGES = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")],
    key=lambda p: p.relative_to(ROOT).as_posix(),
)
PAGE_IDS = [p.relative_to(ROOT).as_posix() for p in PAGES]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
REPO_PATH = re.compile(
    r"(?:sqs_tasks|lambda_handler|tests|bin|benchmarks|example|infra|docs)/[\w./-]*"
)
DOTTED = re.compile(r"(?:sqs_tasks|lambda_handler)(?:\.\w+)+")
PACKAGES = ("sqs_tasks", "lambda_handler")
# What a command writes when it runs, named in the docs but not in the repository.
GENERATED = {"benchmarks/out/"}


def prose(text: str) -> str:
    """The text without its fenced code blocks (which may hold anything)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors of a page's headings, numbered as GitHub numbers repeats."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


@cache
def package_sources() -> str:
    """Every Python source of the shipped packages, for names used as strings (loggers, ids)."""
    return "\n".join(
        p.read_text(encoding="utf-8") for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
    )


def resolves(dotted: str) -> bool:
    """Whether a dotted name is a module, a name defined in one, or a string the code uses."""
    path = ROOT
    source = ""
    for part in dotted.split("."):
        if (path / part / "__init__.py").is_file():
            path = path / part
            source = (path / "__init__.py").read_text(encoding="utf-8")
        elif (path / f"{part}.py").is_file():
            path = path / part
            source = (path.parent / f"{part}.py").read_text(encoding="utf-8")
        else:
            if re.search(rf"\b{re.escape(part)}\b", source):
                return True
            return f'"{dotted}"' in package_sources()
    return True


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(CODE_SPAN.sub("", prose(page.read_text(encoding="utf-8")))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # http(s), mailto: not this test's business
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_named_paths_and_modules_exist(page: Path) -> None:
    missing = []
    for span in CODE_SPAN.findall(prose(page.read_text(encoding="utf-8"))):
        for path in REPO_PATH.findall(span):
            if path not in GENERATED and not (ROOT / path).exists():
                missing.append(path)
        for dotted in DOTTED.findall(span):
            if not resolves(dotted):
                missing.append(dotted)
    assert not missing, f"{page.relative_to(ROOT)} names what does not exist: {missing}"


def test_readme_is_a_door_not_a_manual() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, (
        f"README.md is {size:,} bytes, over {README_LIMIT:,}: move to docs/"
    )


def test_every_docs_page_is_in_the_index() -> None:
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    unlisted = [
        p.name
        for p in (ROOT / "docs").glob("*.md")
        if p.name != "README.md" and f"({p.name})" not in index
    ]
    assert not unlisted, f"docs/README.md does not link {unlisted}"
