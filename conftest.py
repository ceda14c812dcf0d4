"""pytest's view of the repository root: ``pytest`` runs tests/ and the docstring examples
in lakekit/ (``--doctest-modules``, see pyproject.toml).

A module that cannot even be imported without an optional package (lakekit/airflow.py
needs Airflow) is left out of doctest collection when that package is not installed, so a
plain ``pip install lakekit[test]``-less checkout still collects. This file lives here, not
in lakekit/, so that it is never part of the installed package.
"""

from __future__ import annotations

import importlib.util

# module (relative to this folder) -> the package it imports at module level
NEEDS = {"lakekit/airflow.py": "airflow"}

collect_ignore = [path for path, package in NEEDS.items()
                  if importlib.util.find_spec(package) is None]
