"""Issue 10 item 6: the README and docs cite only files that are in the repository, and speak to users
(no wording from the project's issue tracker)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")} | {".ci", "shared"}
# folders a script fills (helm/ferry/files/README.md: copies `python helm/sync.py` makes)
GENERATED = {"helm/ferry/files/alerts/", "helm/ferry/files/dashboards/"}
REF = re.compile(r"`([^`\s]+)`|\]\(([^)\s]+)\)")  # `path` or [text](path)


def cited_paths(doc: Path) -> list[tuple[str, Path]]:
    """Repository paths a doc cites: in backticks when they start with a top-level folder, and link targets."""
    found = []
    for m in REF.finditer(doc.read_text()):
        ref = (m.group(1) or m.group(2)).split("#")[0].rstrip(".,:;")
        if not ref or "://" in ref or "<" in ref or "*" in ref or "{" in ref:
            continue
        if m.group(2):
            found.append((ref, doc.parent / ref))
        elif "/" in ref and ref.split("/")[0] in TOP:
            found.append((ref, ROOT / ref))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_cited_file_exists(doc):
    missing = [ref for ref, path in cited_paths(doc) if not path.exists() and ref not in GENERATED]
    assert not missing, f"{doc.name} cites files that are not in the repository: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_no_tracker_wording(doc):
    text = doc.read_text()
    assert not re.search(r"the issue's|shared/reference", text, re.IGNORECASE), doc.name
