"""Tiny inline-SVG charts for the HTML report: no scripts, no external assets, every text escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

FONT = 'font-family="system-ui, sans-serif" font-size="11"'
BAR = "#4c78a8"


def _t(text: object) -> str:
    return escape(str(text), quote=True)


def hbar(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    width: int = 640,
    row: int = 18,
    label_width: int = 220,
    fmt: str = "{:,.0f}",
) -> str:
    """Horizontal bar chart, one row per label."""
    top = 24
    height = top + row * max(1, len(labels)) + 8
    vmax = max(values, default=0) or 1
    span = width - label_width - 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{_t(title)}" {FONT}>',
        f'<text x="0" y="14" font-weight="bold">{_t(title)}</text>',
    ]
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row
        w = max(0.0, span * v / vmax)
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(
            f'<text x="{label_width - 6}" y="{y + row - 6}" text-anchor="end"><title>{_t(label)}</title>'
            f"{_t(short)}</text>"
        )
        parts.append(f'<rect x="{label_width}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" fill="{BAR}"/>')
        parts.append(f'<text x="{label_width + w + 4:.1f}" y="{y + row - 6}">{_t(fmt.format(v))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def vbar(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    width: int = 640,
    height: int = 220,
    fmt: str = "{:,.0f}",
) -> str:
    """Vertical bars (a histogram) with the labels under the bars."""
    top, bottom, left = 36, 40, 10
    n = max(1, len(labels))
    slot = (width - left * 2) / n
    vmax = max(values, default=0) or 1
    plot = height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{_t(title)}" {FONT}>',
        f'<text x="0" y="14" font-weight="bold">{_t(title)}</text>',
    ]
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        h = plot * v / vmax
        x = left + i * slot
        y = top + plot - h
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{max(1.0, slot - 4):.1f}" height="{h:.1f}" '
            f'fill="{BAR}"><title>{_t(label)}: {_t(fmt.format(v))}</title></rect>'
        )
        parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">{_t(fmt.format(v))}</text>'
        )
        parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{top + plot + 14}" text-anchor="middle">{_t(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def intervals(
    labels: Sequence[str],
    points: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    *,
    title: str,
    width: int = 640,
    row: int = 18,
    label_width: int = 220,
    overall: float | None = None,
) -> str:
    """Point estimates with interval whiskers on a 0..1 axis (zoomed to the smallest lower bound)."""
    known = [x for x in lows if x is not None]
    lo_axis = min(0.9, (min(known) if known else 0.0))
    lo_axis = max(0.0, int(lo_axis * 10) / 10)
    span = width - label_width - 60
    top = 24
    height = top + row * max(1, len(labels)) + 24

    def xs(v: float) -> float:
        return label_width + span * (v - lo_axis) / (1 - lo_axis or 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{_t(title)}" {FONT}>',
        f'<text x="0" y="14" font-weight="bold">{_t(title)}</text>',
    ]
    bottom = top + row * max(1, len(labels))
    for tick in range(int(lo_axis * 10), 11):
        v = tick / 10
        parts.append(f'<line x1="{xs(v):.1f}" y1="{top}" x2="{xs(v):.1f}" y2="{bottom}" stroke="#ddd"/>')
        parts.append(f'<text x="{xs(v):.1f}" y="{bottom + 14}" text-anchor="middle">{v:.1f}</text>')
    if overall is not None:
        parts.append(
            f'<line x1="{xs(overall):.1f}" y1="{top}" x2="{xs(overall):.1f}" y2="{bottom}" '
            'stroke="#e45756" stroke-dasharray="4 3"/>'
        )
    for i, (label, p, lo, hi) in enumerate(zip(labels, points, lows, highs, strict=True)):
        y = top + i * row + row / 2
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text x="{label_width - 6}" y="{y + 4:.1f}" text-anchor="end">{_t(short)}</text>')
        if p is None or lo is None or hi is None:
            parts.append(f'<text x="{label_width}" y="{y + 4:.1f}" fill="#888">not audited</text>')
            continue
        parts.append(
            f'<line x1="{xs(lo):.1f}" y1="{y:.1f}" x2="{xs(hi):.1f}" y2="{y:.1f}" stroke="{BAR}" '
            'stroke-width="2"/>'
        )
        parts.append(
            f'<circle cx="{xs(p):.1f}" cy="{y:.1f}" r="4" fill="{BAR}"><title>{_t(label)}: '
            f"{p:.3f} [{lo:.3f}, {hi:.3f}]</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
