"""The README and docs/: every relative link resolves, every page is in the nav, generated pages are current."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from rnnexp import schema_doc

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`+[^`]*`+")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks: where links and headings live."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """A heading's anchor as MkDocs makes it (Python-Markdown's toc slugify, separator '-')."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings."""
    headings = (re.match(r"#{1,6}\s+(.*?)(\s+#+)?\s*$", line) for line in prose_lines(page.read_text()))
    return {slug(m.group(1)) for m in headings if m}


def links(page: Path) -> list[str]:
    """Every link and image target of a page, outside code blocks and code spans."""
    return [m.group(1) for line in prose_lines(page.read_text()) for m in LINK.finditer(CODE_SPAN.sub("", line))]


def broken(page: Path) -> list[str]:
    """Each relative link of ``page`` whose file is missing, or whose #anchor names no heading of its target."""
    out = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_file():
            out.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{target}: no heading #{anchor} in {dest.name}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken(page) == [], f"{page.relative_to(ROOT)}: broken links"


def test_the_link_checker_finds_what_is_broken(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n## Two words: `code` and a [link](x.md)\n\n```\n# not a heading\n```\n")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#two-words-code-and-a-link) [ok](#here) [web](https://example.org/x.md)\n"
        "## Here\n"
        "[missing](nope.md) [no anchor](a.md#three) [own](#nowhere) [code block line](a.md#not-a-heading)\n"
        "```\n[in a code block](ignored.md)\n```\n"
        "`[in a code span](ignored.md)` ![img](pic.png) [a dir](.)\n"
    )
    assert broken(page) == [
        "nope.md: no such file",
        "a.md#three: no heading #three in a.md",
        "#nowhere: no heading #nowhere in b.md",
        "a.md#not-a-heading: no heading #not-a-heading in a.md",
        "pic.png: no such file",
        ".: no such file",
    ]


def test_slugs_are_the_ones_mkdocs_makes():
    toc = pytest.importorskip("markdown.extensions.toc")  # with the docs extra
    for heading in ("Reading results", "`rnnexp report`", "Run and sweep dirs: what they hold and guarantee",
                    "1. The module", "Other engines: ONNX Runtime and JAX", "Threads and load"):  # fmt: skip
        plain = heading.replace("`", "")
        assert slug(heading) == toc.slugify(plain, "-"), heading


def test_every_docs_page_is_in_the_nav():
    """mkdocs build --strict says so too (CI); this says it where mkdocs is not installed."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from pages(value) if isinstance(value, list) else [value]

    listed = list(pages(config["nav"]))
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(listed) == on_disk
    assert len(listed) == len(set(listed)), "a page listed twice"


def test_column_reference_is_generated_from_the_schema():
    page = ROOT / schema_doc.PAGE
    regenerate = f"regenerate it: {schema_doc.COMMAND}"
    assert page.exists(), f"{schema_doc.PAGE} is missing; {regenerate}"
    assert page.read_text() == schema_doc.render(), f"{schema_doc.PAGE} differs from rnnexp/schema.py; {regenerate}"


def test_column_reference_lists_every_declared_column():
    from rnnexp import schema

    text = schema_doc.render()
    for table, cols in schema.TABLES.items():
        assert f"`{table}`" in text
        for col in cols:
            assert f"| `{col.name}` | {col.kind} | {col.dtype} |" in text, (table, col.name)


def first_code_block(text: str) -> str:
    return text.split("```", 2)[1].split("\n", 1)[1]


def test_getting_started_sets_up_as_the_readme_does():
    """The set-up and test commands appear twice (README for the repo, getting-started for the site): same text."""
    readme = first_code_block((ROOT / "README.md").read_text())
    assert "pytest" in readme  # .ci/run runs the README's first code block's pytest line
    assert first_code_block((DOCS / "getting-started.md").read_text()) == readme


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
