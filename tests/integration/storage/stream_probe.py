"""Run jobs of a spec folder in this (child) process and report memory and S3 ranged reads.

Used by ``test_large_objects.py``: ``python stream_probe.py <job_specs folder> <warm-up job>
<job>...`` prints one JSON object with, per measured job, whether it succeeded, the growth of
the peak resident set size over the resident size just before the run (the kernel's high-water
mark is reset first), the peak of pyarrow's allocated bytes, and the sizes of the ranged GETs
s3fs made. The warm-up job runs first so Dagster's own lazy imports and storage setup are not
counted as data memory.
"""

from __future__ import annotations

import json
import sys
import threading


def _status(field: str) -> int:
    """A ``/proc/self/status`` value in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class ArrowPeak:
    """Samples pyarrow's allocated bytes every 20 ms while a run goes on (its peak)."""

    def __init__(self) -> None:
        import pyarrow as pa

        self._pa = pa
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._pa.total_allocated_bytes())

    def __enter__(self) -> ArrowPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _reset_peak() -> None:
    """Reset the kernel's peak RSS (VmHWM) to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main(folder: str, warm_up: str, jobs: list[str]) -> dict:
    import dagster as dg
    import s3fs.core

    from nexus_dagster.dagster.factory import build_definitions
    from nexus_dagster.spec.loader import load_project

    ranges: list[int] = []
    fetch = s3fs.core.S3File._fetch_range

    def recording_fetch(self, start: int, end: int) -> bytes:
        data = fetch(self, start, end)
        ranges.append(len(data))
        return data

    s3fs.core.S3File._fetch_range = recording_fetch
    defs = build_definitions(load_project(folder))
    report: dict = {}
    with dg.instance_for_test() as instance:
        for name in [warm_up, *jobs]:
            ranges.clear()
            _reset_peak()
            before = _status("VmRSS")
            with ArrowPeak() as arrow:
                result = defs.resolve_job_def(name).execute_in_process(
                    instance=instance, raise_on_error=False
                )
            errors = [
                str(e.event_specific_data.error.message)[:500]
                for e in result.all_events
                if e.is_failure and getattr(e.event_specific_data, "error", None)
            ]
            report[name] = {
                "success": result.success,
                "errors": errors,
                "rss_before": before,
                "peak_growth": _status("VmHWM") - before,
                "arrow_peak": arrow.peak,
                "ranged_gets": len(ranges),
                "largest_get": max(ranges, default=0),
                "bytes_fetched": sum(ranges),
            }
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3:])))
