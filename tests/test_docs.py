"""The documentation holds together: a short front page, links that lead somewhere, an index of every page."""

import re

import pytest

from conftest import PROJECT

DOCS = PROJECT / "docs"
README_MAX_LINES = 150
#: [text](target) and ![alt](target); the target ends at the first space or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:…


def pages():
    """README, CHANGES and every page of docs/, as paths."""
    return [PROJECT / "README.md", PROJECT / "CHANGES.md", *sorted(DOCS.glob("*.md"))]


def prose(text):
    """The text without fenced code blocks and inline code, where a ']( ' is code, not a link."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def relative_links(path):
    return [target for target in LINK.findall(prose(path.read_text())) if not EXTERNAL.match(target)]


def test_readme_is_a_front_page():
    lines = (PROJECT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail to docs/"


def test_the_link_finder_finds_links_and_skips_code():
    text = "see [a](docs/a.md), ![f](figures/f.png), [w](https://x.org) `[c](no.md)`\n```\n[d](nor.md)\n```\n"
    assert LINK.findall(prose(text)) == ["docs/a.md", "figures/f.png", "https://x.org"]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(PROJECT)))
def test_every_relative_link_leads_to_a_file_without_an_anchor(page):
    links = relative_links(page)
    anchored = [target for target in links if "#" in target]
    assert not anchored, f"{page.name}: link to pages, not to anchors, which break silently: {anchored}"
    missing = [target for target in links if not (page.parent / target).exists()]
    assert not missing, f"{page.name}: links to missing files: {missing}"


def test_the_index_lists_every_page_of_docs():
    listed = set(relative_links(DOCS / "index.md"))
    unlisted = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "index.md" and p.name not in listed]
    assert not unlisted, f"docs/index.md does not list: {unlisted}"


def test_the_readme_leads_to_the_index_and_the_history():
    links = set(relative_links(PROJECT / "README.md"))
    assert {"docs/index.md", "CHANGES.md", "LICENSE", "CITATION.cff"} <= links, links


def test_the_readme_says_how_to_set_up_and_then_run_the_commands_near_the_top():
    # A newcomer reads the top of the front page: the two set-up commands, which install to
    # use when, and how to reach ulyss-ann once ./scripts/setup has built .venv.
    top = "\n".join((PROJECT / "README.md").read_text().splitlines()[:40])
    for text in ("./scripts/demo", "./scripts/test", "source .venv/bin/activate", ".venv/bin/ulyss-ann",
                 "Python only", "pip install"):
        assert text in top, f"README.md's first 40 lines do not say {text!r}"
