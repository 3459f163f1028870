"""The Prometheus metrics of every service, defined once so names and labels never drift."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("hookstream_events_consumed_total", "Domain events read by the matcher.")
JOBS_PRODUCED = Counter("hookstream_jobs_produced_total", "Delivery jobs written by the matcher.")
DELIVERY_ATTEMPTS = Counter(
    "hookstream_delivery_attempts_total",
    "Delivery attempts by outcome (delivered, failed, skipped).",
    ["outcome"],
)
DELIVERIES_FINAL = Counter(
    "hookstream_deliveries_total",
    "Deliveries by final outcome (delivered, failed after all attempts, skipped).",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "hookstream_attempt_duration_seconds",
    "Duration of one HTTP attempt.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RETRIES_SCHEDULED = Counter(
    "hookstream_retries_scheduled_total", "Attempts re-published for later."
)
DEACTIVATIONS = Counter("hookstream_deactivations_total", "Webhooks deactivated by policy or 410.")
DEAD_LETTERS = Counter(
    "hookstream_dead_letters_total", "Records sent to the dead-letter topic.", ["service"]
)
IN_FLIGHT = Gauge("hookstream_requests_in_flight", "HTTP requests the sender has in flight.")
SCHEDULED = Gauge("hookstream_retries_waiting", "Retries held in memory until they are due.")
ADMIN_REQUESTS = Counter(
    "hookstream_admin_requests_total",
    "Admin API requests by HTTP status code (401s are failed logins).",
    ["status"],
)
JOBS_WAITING = Gauge(
    "hookstream_jobs_waiting",
    "Due jobs held in the sender's memory by why they wait: slot (a global request slot), "
    "webhook_limit (their webhook uses all its slots), circuit (their webhook's circuit is open).",
    ["reason"],
)
WEBHOOKS_AT_LIMIT = Gauge(
    "hookstream_webhooks_at_limit", "Webhooks with jobs waiting because they use all their slots."
)
CIRCUITS_OPEN = Gauge(
    "hookstream_circuits_open", "Webhooks whose circuit is open or half-open in this sender."
)
JOBS_PARKED = Counter(
    "hookstream_jobs_parked_total",
    "Jobs moved to the retry topic unattempted, by reason: backlog (their webhook is slow) or "
    "circuit (their webhook's circuit is open).",
    ["reason"],
)
PARKED_WAITING = Gauge(
    "hookstream_parked_jobs_waiting",
    "Parked jobs read back from the retry topic and held in memory until due (slow-lane depth).",
)
VIEW_LAG = Gauge(
    "hookstream_view_lag_records",
    "Records a live view is behind its topic's end (end offsets minus positions, all partitions).",
    ["view"],
)
VIEW_FRESH_AGE = Gauge(
    "hookstream_view_fresh_age_seconds",
    "Seconds since a live view was last known to hold everything its topic had.",
    ["view"],
)
