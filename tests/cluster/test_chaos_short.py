"""The chaos run of `make chaos`, short: about 45 s of random kill -9 of a hookstream process or
a broker (restarted after 1-5 s) while events flow; nothing may be lost or changed.

The full 10-minute run and its figures are in docs/reliability.md; this keeps the same code path
in the test suite, on the session's cluster.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from hookstream.localkafka.cluster import LocalCluster

pytestmark = pytest.mark.integration

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"


def _chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hookstream_chaos", CHAOS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_chaos_loses_and_changes_nothing(cluster: LocalCluster) -> None:
    chaos = _chaos()
    # Seed 29 picks a sender, then the matcher, then a broker if the 45 s leave time for a
    # third kill (the victims come from the seed: a failure repeats with the same faults).
    args = argparse.Namespace(minutes=0.75, rate=50.0, drain_s=240.0, seed=29)
    result = chaos.run(args, cluster)
    assert result["kills"], result
    assert result["events_acknowledged"] > 0, result
    assert result["lost"] == 0, result
    assert result["unexpected"] == 0, result
    assert result["webhook_configs_changed"] == [], result
    assert result["delivery_settings_changed"] is False, result
