"""A throwaway Airflow 3 installation for the tests: a home folder with a dags/ folder, a
SQLite database, and ``airflow ...`` commands run in a subprocess against it.

Shared by tests/quality/test_airflow.py (lakekit's operators in test DAGs) and
tests/test_examples.py (the example DAG), which used to build it each on their own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["Airflow"]

TESTS = Path(__file__).resolve().parents[1]


class Airflow:
    """Airflow pointed at ``home``: DAG files from ``dags`` (file name -> source) and extra
    environment variables ``env`` (on top of ``os.environ``). The checkout and the test
    folder are put on ``PYTHONPATH``, so DAG files run this checkout's lakekit and can
    import the tests' helpers."""

    def __init__(self, home: Path, dags: dict[str, str], env: dict[str, str]) -> None:
        self.home = home
        (home / "dags").mkdir(parents=True, exist_ok=True)
        for name, source in dags.items():
            (home / "dags" / name).write_text(source)
        self.env = dict(
            os.environ,
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
            # the checkout under test first (not whatever lakekit is installed), then tests/
            PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS),
                                        os.environ.get("PYTHONPATH", "")]),
            **env,
        )

    @property
    def database(self) -> Path:
        """Airflow's SQLite database (task states, XComs), to read results back."""
        return self.home / "airflow.db"

    def __call__(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """Run ``airflow *args``; stdout and stderr together in ``.stdout``."""
        return subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)

    # the first migrated database of the session; later homes start from a copy of it
    _migrated: Path | None = None

    def migrate(self) -> None:
        """Create the database (``airflow db migrate``); fail the test if that fails.

        The first call of the session runs ``airflow db migrate`` (about 8 s); later ones
        copy the database it made, still empty of DAGs and runs."""
        if Airflow._migrated is not None and Airflow._migrated.exists():
            shutil.copyfile(Airflow._migrated, self.database)
            return
        done = self("db", "migrate")
        assert done.returncode == 0, done.stdout[-3000:]
        Airflow._migrated = self.home / "migrated.db"
        shutil.copyfile(self.database, Airflow._migrated)
