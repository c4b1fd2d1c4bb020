"""The load test's locustfile loads and defines its user mix (`make load` runs it for real).

Run in a subprocess: importing locust patches the standard library with gevent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_locust_lists_the_user_mix() -> None:
    locust = Path(sys.executable).parent / "locust"
    listed = subprocess.run(
        [str(locust), "-f", "tests/load/locustfile.py", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    users = listed.stdout.split("Available Users:")[1].split()
    assert users == ["PredictUser", "RepeatUser", "LegacyUser", "JobUser"]
