"""The plan page's dose chart, drawn on the server as inline SVG (no scripts, no CDN)."""

from __future__ import annotations

from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 260, 52, 16, 16, 36
COLOURS = ("#0b5cad", "#b54708", "#137333", "#6941c6")


def dose_chart_svg(chart: dict[str, Any]) -> SafeString:
    """Per dose reference, planned cumulative dose (dashed) against delivered (solid, a dot
    per fraction); a reference the plan gives no contribution for is named "not tracked"."""
    n = max(int(chart["fractions"] or 0), 1)
    top = max([d for s in chart["series"] for _, d in s["planned"]] +
              [d for s in chart["series"] for _, d in s["points"]] +
              [s["maximum"] or 0 for s in chart["series"]] + [1.0])

    def x(i: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * i / n

    def y(d: float) -> float:
        return H - BOTTOM - (H - TOP - BOTTOM) * d / top

    out = [f'<svg class="dose-chart" role="img" viewBox="0 0 {W} {H}" width="{W}" '
           f'height="{H}" aria-label="Planned and delivered dose by fraction">']
    out.append(f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" '
               'stroke="#5b6b7c"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#5b6b7c"/>')
    for frac in (0, 0.5, 1):
        d = top * frac
        out.append(f'<text x="{LEFT - 6}" y="{y(d) + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{d:.1f}</text>')
    out.append(f'<text x="{LEFT}" y="{H - 8}" font-size="11">0</text>'
               f'<text x="{W - RIGHT}" y="{H - 8}" font-size="11" text-anchor="end">'
               f'fraction {n}</text>'
               f'<text x="{(W) / 2}" y="{H - 8}" font-size="11" text-anchor="middle">'
               'Gy, cumulative, by fraction</text>')
    untracked = 0
    for k, s in enumerate(chart["series"]):
        colour = COLOURS[k % len(COLOURS)]
        label = escape(s["label"])
        if not s["tracked"]:
            out.append(f'<text class="not-tracked" x="{LEFT + 8}" y="{TOP + 12 + 14 * untracked}" '
                       f'font-size="11" fill="#5b6b7c">{label}: not tracked (the plan gives '
                       'no dose contribution for it)</text>')
            untracked += 1
            continue
        planned = " ".join(f"{x(i):.1f},{y(d):.1f}" for i, d in s["planned"])
        out.append(f'<polyline class="planned" points="{planned}" fill="none" '
                   f'stroke="{colour}" stroke-opacity="0.5" stroke-dasharray="5 4">'
                   f'<title>{label} planned: {s["per_fraction"]:.3f} Gy per fraction'
                   '</title></polyline>')
        if s["maximum"]:
            out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(s["maximum"]):.1f}" '
                       f'y2="{y(s["maximum"]):.1f}" stroke="#b42318" stroke-dasharray="2 3">'
                       f'<title>{label}: delivery maximum {s["maximum"]:g} Gy</title></line>')
        pts = [(0, 0.0), *s["points"]]
        line = " ".join(f"{x(i):.1f},{y(d):.1f}" for i, d in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                   f'stroke-width="2"><title>{label} delivered</title></polyline>')
        for i, d in s["points"]:
            out.append(f'<circle class="delivered" cx="{x(i):.1f}" cy="{y(d):.1f}" r="3.5" '
                       f'fill="{colour}"><title>{label}: fraction {i}, {d:.2f} Gy delivered'
                       '</title></circle>')
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every text in it is escaped above
