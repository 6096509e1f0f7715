"""A custom metrics collector: the sidecar of the custom-metrics-collector example.

Upstream's custom collector is a container of your own that reads the trial's output and
reports metrics. This one follows a metrics file written in the
``{metricName: accuracy, metricValue: 0.91}`` style, keeps the metrics named with ``-m``
(``;``-separated, objective first) and prints each as ``name=value`` on its stdout, where
a StdOut-style reader picks them up. It stops when the trial's file has not grown for
``--idle`` seconds after the trial ended (``--wait-pid``) or after ``--timeout`` seconds.

    python3 examples/trials/custom_collector.py -m accuracy;loss -path /tmp/metrics.log --timeout 60
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

PATTERN = re.compile(r"\{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)\}")


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-m", "--metrics", required=True, help="metric names, ';'-separated")
    p.add_argument("-path", "--path", required=True, help="the trial's metrics file")
    p.add_argument("-s", "--server", default="", help="accepted for upstream compatibility; unused")
    p.add_argument("--wait-pid", type=int, default=None, help="stop once this process has ended")
    p.add_argument("--idle", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    wanted = {m for m in args.metrics.split(";") if m}
    deadline = time.monotonic() + args.timeout
    offset, last_growth = 0, time.monotonic()
    while time.monotonic() < deadline:
        try:
            with open(args.path, encoding="utf-8") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = ""
        complete = chunk[: chunk.rfind("\n") + 1]  # a line still being written waits for the next round
        offset += len(complete.encode("utf-8"))
        if complete:
            last_growth = time.monotonic()
        for match in PATTERN.finditer(complete):
            if match.group(1) in wanted:
                print(f"{match.group(1)}={match.group(2)}", flush=True)
        if not _alive(args.wait_pid) and time.monotonic() - last_growth > args.idle:
            return 0
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
