"""The per-view lag in /readyz's body and in the gauges."""

from __future__ import annotations

from prometheus_client import REGISTRY

from hookstream.kafka.follower import ViewLag
from hookstream.ops import lag_report, publish_lags


def test_the_lag_report_names_each_view_with_its_records_behind_and_seconds_since_fresh() -> None:
    report = lag_report(
        {
            "webhooks": ViewLag(records=12, fresh_age_s=3.14159),
            "settings": ViewLag(records=0, fresh_age_s=0.04),
            "event_types": ViewLag(records=None, fresh_age_s=None),
        }
    )
    assert report == {
        "event_types": {"records_behind": None, "seconds_since_fresh": None},
        "settings": {"records_behind": 0, "seconds_since_fresh": 0.0},
        "webhooks": {"records_behind": 12, "seconds_since_fresh": 3.1},
    }
    assert list(report) == ["event_types", "settings", "webhooks"]


def test_the_gauges_carry_the_view_name_and_skip_what_is_unknown() -> None:
    publish_lags(
        {
            "unit-known": ViewLag(records=5, fresh_age_s=2.5),
            "unit-unknown": ViewLag(records=None, fresh_age_s=None),
        }
    )
    value = REGISTRY.get_sample_value
    assert value("hookstream_view_lag_records", {"view": "unit-known"}) == 5
    assert value("hookstream_view_fresh_age_seconds", {"view": "unit-known"}) == 2.5
    assert value("hookstream_view_lag_records", {"view": "unit-unknown"}) is None
