"""Progress lines of a load (run/progress.py): a line per interval or per N batches with rows,
rows/s and bytes, and the final rate as ``nexus/rows_per_second`` in the materialization."""

from __future__ import annotations

import re

import dagster as dg
import pytest

from nexus_dagster.errors import SpecError
from nexus_dagster.run.progress import Progress, ProgressSettings
from tests.support import run_job, write_job


class Lines:
    """A logger-like object keeping what was logged."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_is_logged_once_per_interval_with_rows_rate_and_bytes():
    log, clock = Lines(), Clock()
    progress = Progress(log, "load dst", ProgressSettings(seconds=10.0), clock=clock)
    for _ in range(4):  # 4 batches within the first 9 s: no line yet
        clock.now += 2.25
        progress.add(rows=1000, nbytes=2_000_000)
    assert log.lines == []
    clock.now += 1.0  # 10 s since the start
    progress.add(rows=1000, nbytes=2_000_000)
    assert log.lines == [
        "progress load dst: 5,000 rows, 500 rows/s, 10.0 MB (5 batches) in 10.0 s"
    ]
    clock.now += 5.0  # 5 s since the last line: none
    progress.add(rows=1000)
    assert len(log.lines) == 1
    clock.now += 5.0
    progress.add(rows=1000)
    assert log.lines[1] == (
        "progress load dst: 7,000 rows, 350 rows/s, 10.0 MB (7 batches) in 20.0 s"
    )
    progress.finish()
    clock.now += 100.0  # after finish the rate no longer changes
    assert progress.rows_per_second() == 350.0
    assert progress.rows_per_second(rows=2000) == 100.0


def test_a_line_every_n_batches_when_batches_is_set():
    log, clock = Lines(), Clock()
    progress = Progress(log, "x", ProgressSettings(seconds=3600.0, batches=2), clock=clock)
    for _ in range(5):
        clock.now += 0.5
        progress.add(rows=10)
    assert [re.match(r"progress x: (\d+) rows", line).group(1) for line in log.lines] == [
        "20", "40"
    ]


def test_a_byte_stream_line_shows_bytes_and_bytes_per_second():
    log, clock = Lines(), Clock()
    progress = Progress(log, "load dst", ProgressSettings(seconds=10.0), clock=clock)
    clock.now += 10.0
    progress.add_bytes(50_000_000)
    assert log.lines == ["progress load dst: 50.0 MB through the pipe, 5.0 MB/s in 10.0 s"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("NEXUS_PROGRESS_SECONDS", "soon"), ("NEXUS_PROGRESS_SECONDS", "0"),
     ("NEXUS_PROGRESS_BATCHES", "1.5"), ("NEXUS_PROGRESS_BATCHES", "-1")],
)
def test_settings_from_env_reject_a_bad_value_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SpecError, match="NEXUS_PROGRESS_"):
        ProgressSettings.from_env()


def test_settings_from_env_default_to_a_line_every_10_seconds(monkeypatch):
    monkeypatch.delenv("NEXUS_PROGRESS_SECONDS", raising=False)
    monkeypatch.delenv("NEXUS_PROGRESS_BATCHES", raising=False)
    assert ProgressSettings.from_env() == ProgressSettings(seconds=10.0, batches=0)


def test_a_job_logs_progress_lines_in_the_run_log_and_rows_per_second_metadata(
    tmp_path, monkeypatch
):
    # every batch is "slow" against a 1 ns interval: each one produces a line
    monkeypatch.setenv("NEXUS_PROGRESS_SECONDS", "0.000000001")
    data = tmp_path / "in.csv"
    data.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(3000)))
    folder = write_job(tmp_path, {
        "name": "slow",
        "sources": [{"name": "raw", "source_type": "file", "file_path": str(data),
                     "file_format": "csv", "batch_size": 1000}],
        "targets": [{"name": "out", "target_type": "file", "file_path": str(tmp_path / "o.csv"),
                     "file_format": "csv", "write_mode": "overwrite"}],
    })
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(folder, "slow", instance)
    assert result.success
    lines = [e.user_message for e in instance.all_logs(result.run_id)
             if e.dagster_event is None and e.user_message.startswith("progress ")]
    assert lines, "no progress line in the run log"
    counts = [int(re.match(r"progress load out: ([\d,]+) rows, [\d,]+ rows/s, [\d.]+ MB "
                           r"\(\d+ batches\) in [\d.]+ s$", line).group(1).replace(",", ""))
              for line in lines]
    assert counts == sorted(counts) and counts[-1] == 3000
    (mat,) = [e.materialization for e in result.get_asset_materialization_events()]
    assert mat.metadata["nexus/rows_per_second"].value > 0
