"""Without the engine's extra, the first call says in one line what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

HIDE = """
import sys
for name in {hidden!r}:
    sys.modules[name] = None  # as if not installed: importing it raises ImportError
import lakekit as lk
from lakekit.errors import MissingDependencyError
ds = lk.dataset({path!r})
try:
    exec({call!r})
except MissingDependencyError as exc:
    print("MISSING", exc)
"""


@pytest.mark.parametrize(("hidden", "call", "extra"), [
    (["dask", "dask.dataframe"], "ds.to_dask()", "dask"),
    (["ray", "ray.data"], "ds.to_ray()", "ray"),
    (["dask", "dask.dataframe"],
     "import pandera.polars as pp; lk.check(ds, pp.DataFrameSchema({'a': pp.Column(int)}), "
     "engine='dask')", "dask"),
])
def test_a_missing_engine_names_the_extra(
        tmp_path: Path, hidden: list[str], call: str, extra: str) -> None:
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "a.parquet")
    code = HIDE.format(hidden=hidden, path=str(tmp_path), call=call)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("MISSING"), out.stdout
    assert f"pip install 'lakekit[{extra}]'" in lines[0]
