#!/usr/bin/env python3
"""Draws resident memory over time as a small SVG (standard library only).

    bench/plot_rss.py OUT.svg "TITLE" LABEL=FILE.csv [LABEL=FILE.csv ...]

Each CSV is what bench/reconcile.sh writes (a header, then `seconds,rss_mb` rows).
"""
import csv
import sys

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
W, H, L, R, T, B = 640, 300, 60, 150, 30, 40


def main():
    out, title, series = sys.argv[1], sys.argv[2], []
    for arg in sys.argv[3:]:
        label, path = arg.split("=", 1)
        with open(path) as f:
            rows = [(float(r["seconds"]), float(r["rss_mb"])) for r in csv.DictReader(f)]
        series.append((label, [p for p in rows if p[1] > 0]))
    xmax = max(x for _, pts in series for x, _ in pts) or 1
    ymax = max(y for _, pts in series for _, y in pts) * 1.1 or 1
    sx = lambda x: L + (W - L - R) * x / xmax
    sy = lambda y: H - B - (H - T - B) * y / ymax
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{L}" y="18" font-size="13">{title}</text>',
        f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
        f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
        f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">seconds</text>',
        f'<text x="14" y="{(T + H - B) / 2}" transform="rotate(-90 14 {(T + H - B) / 2})" text-anchor="middle">RSS (MB)</text>',
    ]
    for i in range(5):
        y = ymax * i / 4
        parts.append(f'<text x="{L - 6}" y="{sy(y) + 4}" text-anchor="end">{y:.0f}</text>')
        parts.append(f'<line x1="{L}" y1="{sy(y)}" x2="{W - R}" y2="{sy(y)}" stroke="#ddd"/>')
        x = xmax * i / 4
        parts.append(f'<text x="{sx(x)}" y="{H - B + 14}" text-anchor="middle">{x:.0f}</text>')
    for n, (label, pts) in enumerate(series):
        color = COLORS[n % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>')
        parts.append(f'<text x="{W - R + 8}" y="{T + 14 + 16 * n}" fill="{color}">{label}</text>')
    parts.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
