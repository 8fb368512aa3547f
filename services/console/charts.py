"""Charts as inline SVG (pure): a portfolio row's sparkline, an account's score history with
its band areas and alert markers, weekly usage bars — the demo report's idiom
(``churnwatch/report.py``): no script, no external asset, a ``<title>`` on what one points at
and an ``aria-label`` on every chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

BANDS = (("red", 0.0, 40.0), ("yellow", 40.0, 70.0), ("green", 70.0, 100.0))
BAND_FILLS = {"green": "#e6f4ea", "yellow": "#fff6d6", "red": "#fde4e4"}
BAND_COLOURS = {"green": "#1a7f37", "yellow": "#9a6700", "red": "#cf222e"}
SEVERITY_COLOURS = {"critical": "#b42318", "warning": "#9a4d00", "info": "#0b5cd5"}
INK, MUTED = "#1f2328", "#57606a"


@dataclass(frozen=True)
class Marker:
    at: datetime
    severity: str
    label: str


def _clamp(score: float) -> float:
    return max(0.0, min(100.0, score))


def sparkline(points: Sequence[tuple[date, float]], today: date, days: int = 30) -> str:
    """A 30-day line of daily scores; empty when there is no point."""
    if not points:
        return "<span class='muted'>no history</span>"
    w, h = 120.0, 28.0
    start, per_day, per_point = (today - timedelta(days=days)).toordinal(), w / days, (h - 4) / 100
    xys = [
        (max(0.0, min(w, (d.toordinal() - start) * per_day)), h - 2 - _clamp(s) * per_point)
        for d, s in points
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xys)
    end_x, end_y = (f"{v:.1f}" for v in xys[-1])
    first, last = points[0][1], points[-1][1]
    label = f"score over {days} days: {first:.0f} to {last:.0f}"
    return (
        f"<svg class='spark' viewBox='0 0 {w:.0f} {h:.0f}' width='{w:.0f}' height='{h:.0f}'"
        f" role='img' aria-label='{escape(label)}'><title>{escape(label)}</title>"
        f"<polyline points='{line}' fill='none' stroke='{INK}' stroke-width='1.5'/>"
        f"<circle cx='{end_x}' cy='{end_y}' r='2.5' fill='{INK}'/></svg>"
    )


def history(
    points: Sequence[tuple[datetime, float]],
    markers: Sequence[Marker],
    start: datetime,
    end: datetime,
) -> str:
    """The score over [start, end] on band areas, alerts as triangles above the plot."""
    left, width, top, height = 28.0, 660.0, 16.0, 160.0
    w, h = left + width + 8, top + height + 20
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return left + max(0.0, min(1.0, (at - start).total_seconds() / span)) * width

    def y(score: float) -> float:
        return top + height - _clamp(score) / 100 * height

    parts = [
        f"<svg viewBox='0 0 {w:.0f} {h:.0f}' width='100%' role='img'"
        " aria-label='score history with band areas and alerts'>"
    ]
    for name, lower, upper in BANDS:
        parts.append(
            f"<rect x='{left}' y='{y(upper):.1f}' width='{width}'"
            f" height='{y(lower) - y(upper):.1f}'"
            f" fill='{BAND_FILLS[name]}'><title>{name} band: {lower:.0f}–{upper:.0f}</title></rect>"
        )
    for value in (0, 40, 70, 100):
        parts.append(
            f"<text x='{left - 4}' y='{y(value) + 3:.1f}' font-size='10' text-anchor='end'"
            f" fill='{MUTED}'>{value}</text>"
        )
    for tick, anchor in ((start, "start"), (start + (end - start) / 2, "middle"), (end, "end")):
        parts.append(
            f"<text x='{x(tick):.1f}' y='{h - 4:.0f}' font-size='10' text-anchor='{anchor}'"
            f" fill='{MUTED}'>{tick:%d %b}</text>"
        )
    if points:
        line = " ".join(f"{x(at):.1f},{y(score):.1f}" for at, score in points)
        parts.append(f"<polyline points='{line}' fill='none' stroke='{INK}' stroke-width='2'/>")
        at, score = points[-1]
        parts.append(
            f"<circle cx='{x(at):.1f}' cy='{y(score):.1f}' r='3' fill='{INK}'>"
            f"<title>{at:%Y-%m-%d %H:%M}: {score:.0f}</title></circle>"
        )
    for m in markers:
        mx = x(m.at)
        colour = SEVERITY_COLOURS.get(m.severity, MUTED)
        parts.append(
            f"<path d='M{mx - 5:.1f},{top - 12} L{mx + 5:.1f},{top - 12} L{mx:.1f},{top - 3} Z'"
            f" fill='{colour}'><title>{m.at:%Y-%m-%d} {escape(m.label)} ({m.severity})"
            "</title></path>"
        )
    parts.append("</svg>")
    return "".join(parts)


def usage_bars(weeks: Sequence[tuple[str, int]]) -> str:
    """Weekly usage events as bars, oldest first."""
    if not weeks:
        return "<p class='muted'>No usage recorded.</p>"
    w, h, gap = 660.0, 90.0, 4.0
    most = max(v for _, v in weeks) or 1
    bar = (w - gap * (len(weeks) - 1)) / len(weeks)
    parts = [
        f"<svg viewBox='0 0 {w:.0f} {h + 14:.0f}' width='100%' role='img'"
        " aria-label='usage events per week'>"
    ]
    for i, (label, value) in enumerate(weeks):
        bh = value / most * h
        bx = i * (bar + gap)
        parts.append(
            f"<rect x='{bx:.1f}' y='{h - bh:.1f}' width='{bar:.1f}' height='{bh:.1f}'"
            f" fill='#0b5cd5'><title>week of {escape(label)}: {value} events</title></rect>"
        )
    parts.append(
        f"<text x='0' y='{h + 12:.0f}' font-size='10' fill='{MUTED}'>{escape(weeks[0][0])}</text>"
        f"<text x='{w:.0f}' y='{h + 12:.0f}' font-size='10' text-anchor='end'"
        f" fill='{MUTED}'>{escape(weeks[-1][0])}</text></svg>"
    )
    return "".join(parts)
