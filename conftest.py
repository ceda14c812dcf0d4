"""pytest's view of the repository root: ``pytest`` runs tests/ and the docstring examples
in lakekit/ (``--doctest-modules``, see pyproject.toml).

The docstring examples are documentation first, so they stay short: what they use without
building it comes from the doctest namespace filled here. Every example runs in a fresh
temporary directory, the current directory, which holds ``schemas/events.yaml`` (a copy
of the repository's) and ``data/events/``: three parquet shards of four rows each (columns
``user_id`` 0..11, ``kind``, ``amount``). Examples may use ``lk``, ``pa``, ``pl`` and, built
only for the examples that use them without assigning them:

- ``t``: ``lk.Table("lake/events")`` with columns ``id``, ``kind``; version 0 holds two
  rows (``metadata={"load": "initial"}``) and is tagged ``"reviewed"``; version 1 appends
  ``(3, "test")``.
- ``ds``: ``lk.dataset("data/events/")``.
- ``sink``: a :class:`lakekit.KafkaDeltaSink` (group ``events-to-delta``) from topic
  ``events`` of its own local Tansu broker, which holds three JSON messages, into
  ``lake/events``; not run yet.

Examples that start local servers carry the ``kafka`` / ``s3`` / ``slow`` markers, like
the tests that do, so ``-m "not kafka"`` leaves them out too.

lakekit/airflow.py is left out of doctest collection: its examples need an Airflow
scheduler (all are skipped), and importing Airflow into the test process would load its
settings and logging configuration for every later test. tests/quality/test_airflow.py
runs the operators in real Airflow instead. This file lives here, not in lakekit/, so that
it is never part of the installed package.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakekit as lk
from lakekit.local_servers import tansu_broker
from lakekit.quality.schemas import ENV_VAR

collect_ignore = ["lakekit/airflow.py"]

ROOT = Path(__file__).resolve().parent
_NAME = re.compile(r"(?<![\w.])[A-Za-z_]\w*")  # a name, not an attribute (after a dot)
_ASSIGNED = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)", re.MULTILINE)

# doctest markers: a name an example uses -> the markers of the tests that do the same
_MARKERS = {
    "moto_s3_server": ("s3",),
    "tansu_broker": ("kafka",),
    "restartable_tansu_broker": ("kafka", "s3"),
    "KafkaDeltaSink": ("kafka", "slow"),
    "sink": ("kafka", "slow"),
    "run_demo": ("kafka", "s3", "slow"),
}


def _names_used(item: pytest.Item) -> set[str]:
    """The names a doctest item's examples use, attributes left out (empty for other tests)."""
    dtest = getattr(item, "dtest", None)
    if dtest is None:
        return set()
    return {name for ex in dtest.examples for name in _NAME.findall(ex.source)}


def _names_assigned(item: pytest.Item) -> set[str]:
    """The names a doctest item's examples assign themselves (``name = ...``)."""
    dtest = getattr(item, "dtest", None)
    if dtest is None:
        return set()
    return {name for ex in dtest.examples for name in _ASSIGNED.findall(ex.source)}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for name in _names_used(item) & _MARKERS.keys():
            for marker in _MARKERS[name]:
                item.add_marker(marker)


def _events_table() -> lk.Table:
    t = lk.Table("lake/events")
    t.write(pa.table({"id": [1, 2], "kind": ["view", "click"]}), metadata={"load": "initial"})
    t.tag("reviewed")
    t.write(pa.table({"id": [3], "kind": ["test"]}))
    return t


def _write_events_shards(shards: Path) -> None:
    shards.mkdir(parents=True)
    for i in range(3):
        ids = list(range(4 * i, 4 * i + 4))
        pq.write_table(pa.table({"user_id": ids, "kind": ["view", "click", "buy", "view"],
                                 "amount": [1.5 * n for n in ids]}),
                       shards / f"part-{i}.parquet")


def _events_sink(stack: contextlib.ExitStack) -> lk.KafkaDeltaSink:
    from kafka import KafkaProducer

    broker = stack.enter_context(tansu_broker())
    broker.create_topic("events")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for i in range(3):
        producer.send("events", json.dumps({"id": i, "kind": "view"}).encode())
    producer.close()  # flushes
    return lk.KafkaDeltaSink("events", "lake/events", bootstrap_servers=broker.bootstrap_servers,
                             group_id="events-to-delta",
                             consumer_config={"session_timeout_ms": 6000})


@pytest.fixture(autouse=True)
def _doctest_objects(request: pytest.FixtureRequest,
                     doctest_namespace: dict[str, Any]) -> Iterator[None]:
    """Fill the doctest namespace (see the module docstring); nothing for other tests."""
    names = _names_used(request.node)
    if not names:
        yield
        return
    tmp_path: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    _write_events_shards(tmp_path / "data" / "events")
    names -= _names_assigned(request.node)  # an example that builds its own needs none
    with contextlib.ExitStack() as stack:
        objects: dict[str, Any] = {"lk": lk, "pa": pa, "pl": pl}
        if "t" in names:
            objects["t"] = _events_table()
        if "ds" in names:
            objects["ds"] = lk.dataset("data/events/")
        if "sink" in names:
            objects["sink"] = _events_sink(stack)
        doctest_namespace.update(objects)
        try:
            yield
        finally:
            for name in objects:
                doctest_namespace.pop(name, None)
