"""Every ```python block in docs/*.md and README.md runs, so the docs cannot rot.

The blocks of one page run in order, in one namespace, in a fresh temporary working
directory (holding a copy of the repository's ``schemas/``, as a reader working from the
repository root would have). Pages are self-contained: a page that needs S3 or Kafka starts
the local server itself (``lakekit.local_servers``) and stops it in its last block, exactly
as a reader following the page would. Code fences must say what they hold: an unlabelled
fence fails the test, so Python cannot hide from it in an unlabelled block.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)


def _blocks(page: Path) -> list[tuple[str, int, str]]:
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        out.append((m.group("lang").strip(), line, m.group("body")))
    return out


def _python_blocks(page: Path) -> list[tuple[int, str]]:
    return [(line, body) for lang, line, body in _blocks(page) if lang == "python"]


def test_there_are_pages_with_code() -> None:
    counts = {p.name: len(_python_blocks(p)) for p in PAGES}
    assert sum(counts.values()) >= 10, counts
    for name in ("index.md", "storage.md", "loaders.md", "tables.md", "sink.md", "quality.md"):
        assert counts.get(name, 0) >= 1, f"docs/{name} has no executed example: {counts}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_fence_is_labelled(page: Path) -> None:
    unlabelled = [line for lang, line, _ in _blocks(page) if not lang]
    assert not unlabelled, (
        f"{page.name}: code fences without a language at lines {unlabelled}; "
        "label them python (executed), or text / bash / yaml / console"
    )


def _run_page(page: Path, tmp_path: Path) -> None:
    blocks = _python_blocks(page)
    assert blocks, page
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    script = ["import sys", "ns = {'__name__': '__main__'}"]
    for line, body in blocks:
        script.append(
            f"exec(compile({body!r}, {f'{page.name}:{line}'!r}, 'exec'), ns)"
        )
    # Pages that start servers stop them in their last block; a failing page must not
    # leave them behind, so the page runs in its own interpreter, killed on timeout.
    env = dict(os.environ)
    env.pop("LAKEKIT_SCHEMAS_DIR", None)
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"{page.name}: a python block failed\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-6000:]}"
    )


def _marks(page: Path) -> list[pytest.MarkDecorator]:
    code = "".join(body for _, body in _python_blocks(page))
    marks = []
    if "moto_s3_server" in code:
        marks.append(pytest.mark.s3)
    if "tansu_broker" in code:
        marks.append(pytest.mark.kafka)
    return marks


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, id=p.name, marks=_marks(p)) for p in PAGES if _python_blocks(p)],
)
def test_page_runs(page: Path, tmp_path: Path) -> None:
    _run_page(page, tmp_path)


def test_mkdocs_strict_build(tmp_path: Path) -> None:
    """The site, API reference included, builds with no warning (broken links, docstrings)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    api = (tmp_path / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("lakekit.dataset", "lakekit.Table.restore", "lakekit.check",
                 "lakekit.KafkaDeltaSink", "lakekit.QualityReport", "lakekit.storage.resolve"):
        assert f'id="{name}"' in api, f"{name} missing from the API reference"
    assert (tmp_path / "storage" / "index.html").exists()
