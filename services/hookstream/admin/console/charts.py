"""Pictures of a webhook's last day, drawn on the server as SVG (no script, no chart library):
deliveries per hour stacked by outcome, and the attempts' latency percentiles per hour."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from hookstream.history.schemas import DeliveryOut

HOUR_MS = 3600 * 1000
HOURS = 24
WIDTH, HEIGHT = 720, 200
LEFT, BOTTOM, TOP = 44, 24, 12
#: The colours of outcomes and percentiles, in the order of the legend.
OUTCOME_COLOURS = {"delivered": "#2e7d32", "failed": "#c62828", "pending": "#f9a825"}
PERCENTILE_COLOURS = {"p50": "#1565c0", "p90": "#6a1b9a", "p99": "#ef6c00"}


@dataclass
class Hour:
    """One hour of the last day: deliveries that fired in it, attempts that ran in it."""

    start: int
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLOURS, 0))
    durations: list[float] = field(default_factory=list)


def hours_of(deliveries: list[DeliveryOut], now: int) -> list[Hour]:
    """The last 24 hours (the current one last), filled from these deliveries."""
    first = (now // HOUR_MS - HOURS + 1) * HOUR_MS
    hours = [Hour(first + i * HOUR_MS) for i in range(HOURS)]
    for delivery in deliveries:
        index = (delivery.triggered_at - first) // HOUR_MS
        if 0 <= index < HOURS:
            hours[index].outcomes[delivery.outcome.value] += 1
        for attempt in delivery.attempts:
            index = (attempt.at - first) // HOUR_MS
            if 0 <= index < HOURS:
                hours[index].durations.append(attempt.duration_ms)
    return hours


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of non-empty ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _nice_top(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _frame(title: str, top: float, unit: str, hours: list[Hour]) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]
    for i in range(5):
        y = TOP + plot_h * i / 4
        label = top * (4 - i) / 4
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}" stroke="#e0e0e0"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="#555">{label:g}{unit}</text>'
        )
    slot = (WIDTH - LEFT) / HOURS
    for i, hour in enumerate(hours):
        if i % 4 == 0:
            hh = (hour.start // HOUR_MS) % 24
            parts.append(
                f'<text x="{LEFT + slot * i + 2:.1f}" y="{HEIGHT - 8}" font-size="10" '
                f'fill="#555">{hh:02d}:00</text>'
            )
    return parts


def volume_svg(hours: list[Hour]) -> Markup:
    """Deliveries per hour, one bar per hour stacked delivered / failed / pending."""
    # Whole deliveries: at least 4, so that the four grid lines fall on whole numbers.
    top = max(4.0, _nice_top(max(sum(h.outcomes.values()) for h in hours)))
    parts = _frame("Deliveries per hour (UTC) by outcome", top, "", hours)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / HOURS
    for i, hour in enumerate(hours):
        base = float(HEIGHT - BOTTOM)
        for outcome, colour in OUTCOME_COLOURS.items():
            count = hour.outcomes[outcome]
            if not count:
                continue
            height = plot_h * count / top
            base -= height
            parts.append(
                f'<rect x="{LEFT + slot * i + 2:.1f}" y="{base:.1f}" width="{slot - 4:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{count} {outcome}</title></rect>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and escaped text only


def latency_svg(hours: list[Hour]) -> Markup:
    """The attempts' p50, p90 and p99 duration per hour, as lines (gaps where none ran)."""
    points: dict[str, list[tuple[int, float]]] = {name: [] for name in PERCENTILE_COLOURS}
    for i, hour in enumerate(hours):
        if hour.durations:
            for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
                points[name].append((i, percentile(hour.durations, share)))
    highest = max((value for line in points.values() for _, value in line), default=0.0)
    top = _nice_top(highest)
    parts = _frame("Attempt latency per hour (UTC), milliseconds", top, "", hours)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / HOURS
    for name, line in points.items():
        colour = PERCENTILE_COLOURS[name]
        coords = [
            (LEFT + slot * (i + 0.5), HEIGHT - BOTTOM - plot_h * value / top) for i, value in line
        ]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for (x, y), (_, value) in zip(coords, line, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{name} {value:.1f} ms</title></circle>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and escaped text only
