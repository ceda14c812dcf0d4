"""Notebook rendering: concise reprs and HTML views of Dataset, Table and QualityReport,
with no credential in any of them."""

from __future__ import annotations

import html.parser
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakekit as lk

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


class _Checker(html.parser.HTMLParser):
    """Counts tags and checks that every opened table / div / details is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.seen: dict[str, int] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1
        if tag in ("table", "div", "details", "tr"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("table", "div", "details", "tr"):
            assert self.stack and self.stack[-1] == tag, (self.stack, tag)
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


class _Cells(html.parser.HTMLParser):
    """The rows of every table: each cell as (alignment from its style, its text)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str]]] = []
        self._cell: list[str] | None = None
        self._align = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            style = dict(attrs).get("style") or ""
            self._align = next((part.split(":", 1)[1] for part in style.split(";")
                                if part.startswith("text-align:")), "")
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append((self._align, "".join(self._cell)))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _cells(markup: str) -> dict[str, list[tuple[str, str]]]:
    """Each table row keyed by the text of its first cell."""
    parser = _Cells()
    parser.feed(markup)
    parser.close()
    return {r[0][1]: r for r in parser.rows if r}


def _parse(markup: str) -> _Checker:
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    assert not checker.stack, f"unclosed tags: {checker.stack}"
    return checker


def _events(n: int, *, bad_user: int | None = None) -> pa.Table:
    now = datetime.now(timezone.utc)
    users = [i % 9 for i in range(n)]
    if bad_user is not None:
        users[bad_user] = -1
    return pa.table({
        "event_id": pa.array(range(n), pa.int64()),
        "user_id": pa.array(users, pa.int64()),
        "kind": ["view", "click", "buy"] * (n // 3) + ["view"] * (n % 3),
        "amount": [1.0] * n,
        "event_time": pa.array([now - timedelta(minutes=1)] * n, pa.timestamp("us", "UTC")),
    })


def test_dataset_repr_and_html(tmp_path: Path) -> None:
    for i in range(3):
        pq.write_table(_events(30), tmp_path / f"part-{i}.parquet")
    ds = lk.dataset(tmp_path)
    text = repr(ds)
    assert text.startswith(f"Dataset({str(tmp_path)!r}, format='parquet', files=3, bytes=")
    assert "\n" not in text and len(text) < 200
    view = _parse(ds._repr_html_())
    body = "".join(view.text)
    assert "lakekit.Dataset" in body and "3 file(s)" in body
    assert view.seen["tr"] == 1 + 5  # header + one row per column
    for name in ("event_id", "user_id", "kind", "amount", "event_time"):
        assert name in body
    rows = _cells(ds._repr_html_())
    assert rows["column"] == [("left", "column"), ("left", "type")]
    assert rows["user_id"] == [("left", "user_id"), ("left", "int64")]  # text left-aligned


def test_table_repr_and_html(tmp_path: Path) -> None:
    t = lk.Table(tmp_path / "events")
    assert repr(t) == f"Table({str(tmp_path / 'events')!r})"
    assert "no Delta table here yet" in t._repr_html_()
    t.write(_events(30))
    t.tag("clean")
    t.write(_events(6))
    view = _parse(t._repr_html_())
    body = "".join(view.text)
    assert "lakekit.Table" in body
    assert "version 1, 36 rows in 2 file(s)" in body
    assert "tags: clean=v0" in body
    assert "last 2 commit(s)" in body and "WRITE" in body
    assert view.seen["tr"] == (1 + 5) + (1 + 2)  # schema table + history table
    rows = _cells(t._repr_html_())
    assert rows["kind"][:2] == [("left", "kind"), ("left", "string")]
    assert rows["version"][0] == ("right", "version")
    assert rows["0"][0] == ("right", "0") and rows["0"][2] == ("left", "WRITE")
    assert rows["0"][3] == ("left", "clean")


def test_quality_report_repr_and_html(tmp_path: Path) -> None:
    report = lk.check(_events(30, bad_user=4), "events", schemas_dir=SCHEMAS,
                      freshness=lk.Freshness(column="event_time", max_age="1h"))
    text = repr(report)
    assert text == ("QualityReport('fail', source='<pyarrow 30 rows x 5 columns>', "
                    "schema=fail, freshness=pass)")
    markup = report._repr_html_()
    view = _parse(markup)
    body = "".join(view.text)
    assert "FAIL" in body and "failure cases: 1 shown of 1" in body
    assert "#cf222e" in markup  # fail in red
    assert "#1a7f37" in markup  # pass in green
    rows = _cells(markup)
    assert [a for a, _ in rows["check"]] == ["left", "left", "right", "right", "left"]
    name, _, observed, threshold, message = rows["freshness"]
    assert name == ("left", "freshness") and message[0] == "left"  # text left-aligned
    assert re.fullmatch(r"1m(0\ds)?", observed[1]), observed  # ~61 s old, not "61.064"
    assert threshold == ("right", "max 1h")  # not "3600.0"
    assert rows["schema"][2:4] == [("right", "1 failure"), ("right", "0 failures")]
    assert rows["column"][0] == ("left", "column")  # failure cases: text left
    assert rows["user_id"][2] == ("left", "-1") and rows["user_id"][3] == ("right", "4")


def test_quality_report_html_speaks_human_units() -> None:
    events = _events(30)
    shown = {
        (">= 1,000 rows", "max 1h, warn 30m"): lk.check(
            events, volume=lk.Volume(min_rows=1000),
            freshness=lk.Freshness(column="event_time", max_age="1h", warn_age="30m")),
        ("<= 5,000 rows", "max 2d"): lk.check(
            events, volume=lk.Volume(max_rows=5000),
            freshness=lk.Freshness(column="event_time", max_age="2d")),
        ("10\u20135,000 rows", "max 1h30m"): lk.check(
            events, volume=lk.Volume(min_rows=10, max_rows=5000),
            freshness=lk.Freshness(column="event_time", max_age="90m")),
    }
    for (volume, freshness), report in shown.items():
        rows = _cells(report._repr_html_())
        assert rows["volume"][2:4] == [("right", "30 rows"), ("right", volume)]
        assert rows["freshness"][3] == ("right", freshness)
        assert "min_rows" not in report._repr_html_()
    # only the view changes: the data keeps its numbers
    assert report.result("volume").to_dict()["threshold"] == {"min_rows": 10, "max_rows": 5000}
    assert report.result("freshness").to_dict()["threshold"] == 5400.0


@pytest.mark.s3
def test_no_credentials_in_any_view(s3_server: object, s3_bucket: str,
                                    s3_options: dict[str, object]) -> None:
    secret = "s3cr3t-value-never-shown"
    options = {**s3_options, "secret": secret}
    # moto accepts any secret; the point is that it never shows up
    t = lk.Table(f"s3://{s3_bucket}/events", storage_options=options)
    t.write(_events(9))
    ds = lk.dataset(f"s3://{s3_bucket}/events", storage_options=options)
    report = lk.check(t, volume=lk.Volume(min_rows=1))
    for shown in (repr(t), t._repr_html_(), repr(ds), ds._repr_html_(), repr(report),
                  report._repr_html_(), report.to_json()):
        assert secret not in shown
    assert "version 0, 9 rows" in t._repr_html_()


def test_progress_in_logs_is_plain_lines(tmp_path: Path) -> None:
    """progress=True with stderr going to a log (not a terminal, not Jupyter): whole lines."""
    import subprocess
    import sys

    for i in range(4):
        pq.write_table(_events(300), tmp_path / f"part-{i}.parquet")
    code = f"import lakekit as lk; print(lk.load({str(tmp_path)!r}, progress=True).num_rows)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1200"
    assert "\r" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and all(line.startswith("lakekit parquet:") for line in lines), lines
    assert "100%" in lines[-1]


def test_sink_stats_repr_and_html() -> None:
    stats = lk.SinkStats(
        records_in=5_000, bytes_in=800_000, rows_written=4_982, dead_lettered=18, commits=3,
        table_version=2, dead_letter_version=2, offsets={"events[0]": 1961, "events[1]": 1464},
        lag={"events[0]": 0, "events[1]": 12}, rebalances=1, elapsed_seconds=4.0,
    )
    assert repr(stats) == ("SinkStats(records_in=5000, rows_written=4982, dead_lettered=18, "
                           "commits=3, table=v2, partitions=2, lag=12, elapsed=4.0s)")
    markup = stats._repr_html_()
    view = _parse(markup)
    body = "".join(view.text)
    assert "lakekit.SinkStats" in body and "5,000 records in" in body
    assert "1,250/s" in body and "18 dead-lettered" in body
    assert view.seen["tr"] == 1 + 2  # header + one row per partition
    assert "events[0]" in body and "1,961" in body
    assert "color:#9a6700'>12<" in markup  # a lagging partition stands out
    rows = _cells(markup)
    assert rows["events[1]"] == [("left", "events[1]"), ("right", "1,464"), ("right", "12")]
    assert repr(lk.SinkStats()).startswith("SinkStats(records_in=0,")
