"""One generated data set with every defect kind (seed 11, 1,500 persons) and
the nightly warehouse built from it, shared by the breakdown tests and the
analyst-question tests (built once per test session: the second module finds
the warehouse its first caller left under pytest's base temp directory)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import nightly

MONTHS = "2023-01..2023-12"


def build(base: Path) -> tuple[Path, Path]:
    """(data directory, warehouse file) under ``base``, made on first use."""
    data, wh = base / "gen", base / "wh" / "w.duckdb"
    done = base / "done"
    if not done.exists():
        subprocess.run([sys.executable, "-m", "datagen", "--out", str(data), "--seed", "11",
                        "--persons", "1500"], check=True, capture_output=True)
        wh.parent.mkdir(parents=True, exist_ok=True)
        nightly.run(["--input", str(data), "--warehouse", f"duckdb:///{wh}",
                     "--as-of", (data / "as_of.txt").read_text().strip(), "--months", MONTHS,
                     "--no_alerts"])
        done.write_text("ok")
    return data, wh


@pytest.fixture(scope="session")
def breakdown_warehouse(tmp_path_factory) -> tuple[Path, Path]:
    return build(tmp_path_factory.getbasetemp() / "breakdown")
