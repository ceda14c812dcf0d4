"""pytest's view of the repository root: ``pytest`` runs tests/ and the docstring examples
in lakekit/ (``--doctest-modules``, see pyproject.toml).

lakekit/airflow.py is left out of doctest collection: its examples need an Airflow
scheduler (all are skipped), and importing Airflow into the test process would load its
settings and logging configuration for every later test. tests/quality/test_airflow.py
runs the operators in real Airflow instead. This file lives here, not in lakekit/, so that
it is never part of the installed package.
"""

from __future__ import annotations

collect_ignore = ["lakekit/airflow.py"]
