"""The examples run against the test server."""

from __future__ import annotations

import sys
from pathlib import Path

import rota

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import report_job  # noqa: E402


def test_report_job_example_delivers_a_signed_result(client: rota.Client) -> None:
    results = report_job.main(client)
    [task] = results.values()
    assert task["state"] == "succeeded"
    assert task["result"] == {
        "columns": ["month", "total"],
        "rows": [["2026-10", 1500], ["2026-11", 900]],
        "row_count": 2,
    }
