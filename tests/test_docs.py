"""The guides and the README: every measured number comes from a generated report or table, every figure
they show exists, and the published figures stay few and small."""
import re
from pathlib import Path

import pytest

from kerascnn.report import FIGURE_BYTES, README_BLOCKS, block_markers

ROOT = Path(__file__).resolve().parents[1]
GUIDES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
MAX_FIGURES = 60
# An accuracy or loss typed by hand (0.8205) or a mean ± sd with numbers: what only a report may print.
MEASURED = re.compile(r"\b0\.\d{3,}\b|\d ± \d")


def prose(text):
    """``text`` without code (fenced, indented and inline: commands and hyperparameters) and without the
    README's generated blocks."""
    for name in README_BLOCKS:
        begin, end = block_markers(name)
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"(?m)^(    |\t).*$", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.name)
def test_no_measured_number_is_typed_into_a_guide(guide):
    typed = [line.strip() for line in prose(guide.read_text()).splitlines() if MEASURED.search(line)]
    assert not typed, f"{guide.name}: numbers belong in a report (kerascnn report) or BENCHMARKS.md: {typed}"


def test_the_rule_catches_a_typed_accuracy_but_not_commands_or_generated_tables():
    begin, end = block_markers("results")
    assert MEASURED.search(prose("the winner scores 0.8205 on validation"))
    assert MEASURED.search(prose("0.72 ± 0.01 over three seeds"))
    assert not MEASURED.search(prose(f"`learning_rate=0.000647522` and\n{begin}\n| a | 0.8205 |\n{end}\n"))


def linked_figures(path):
    return [(path.parent / link).resolve() for link in re.findall(r"!\[[^\]]*\]\(([^)#]+\.png)\)", path.read_text())]


def test_every_figure_shown_exists_and_every_published_figure_is_shown():
    pages = GUIDES + sorted((ROOT / "docs" / "reports").glob("*.md"))
    shown = {figure for page in pages for figure in linked_figures(page)}
    missing = sorted(str(f.relative_to(ROOT)) for f in shown if not f.exists())
    assert not missing, f"figures linked but absent: {missing}"
    published = sorted((ROOT / "docs" / "figures").rglob("*.png"))
    unused = sorted(str(f.relative_to(ROOT)) for f in published if f.resolve() not in shown)
    assert not unused, f"figures no page shows (delete them): {unused}"
    assert len(published) <= MAX_FIGURES
    too_big = [str(f.relative_to(ROOT)) for f in published if f.stat().st_size > FIGURE_BYTES]
    assert not too_big, f"figures over {FIGURE_BYTES} bytes: {too_big}"
