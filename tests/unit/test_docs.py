"""The README's settings table and the events document say what the code does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hookstream.core.triggers import DEVICE_EVENTS

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_is_generated_from_the_settings_model() -> None:
    table = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "settings_table.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    readme = (ROOT / "README.md").read_text()
    missing = [line for line in table.splitlines() if line not in readme]
    assert missing == [], "README.md is out of date; run `python scripts/settings_table.py --write`"


def test_every_device_event_mapping_is_documented() -> None:
    events = (ROOT / "docs" / "events.md").read_text()
    for name, (source, operation) in DEVICE_EVENTS.items():
        assert f"| {name} | {source} | {operation} |" in events
