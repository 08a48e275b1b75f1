"""The Markdown gallery of a run (`results/{run}/figures/index.md`): every figure and table on one page.

Links are relative, so the page reads the same on a code host, in an editor's preview, or from a
copy of the folder. Snakemake's HTML report shows the same files with the rules' captions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    heading: str
    body: str  # Markdown


def figure_markdown(filename: str, alt: str, caption: str) -> str:
    """An image linked to itself (click for full size), with its caption below."""
    return f"[![{alt}]({filename})]({filename})\n\n{caption}\n"


def gallery_markdown(title: str, intro: str, sections: Sequence[Section]) -> str:
    """The page: a title, a short introduction, a contents line and the sections in order."""
    anchors = [s.heading.lower().replace(" ", "-") for s in sections]
    contents = " · ".join(f"[{s.heading}](#{a})" for s, a in zip(sections, anchors))
    parts = [f"# {title}\n", f"{intro}\n", f"{contents}\n"]
    parts += [f"## {s.heading}\n\n{s.body.rstrip()}\n" for s in sections]
    return "\n".join(parts)
