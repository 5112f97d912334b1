"""bench.svg: a hand-written bar chart of the figures, one panel per row of the table."""

from __future__ import annotations

from xml.sax.saxutils import escape

from harness.bench.cases import ROOT
from harness.bench.stats import Key, Stats, kernels_of, overhead, rows
from harness.bench.table import mode_label, pct, row_label

# (root, memcg) colour per kernel, in the order measured: greys for the first
# (vanilla), then blues, oranges, greens, purples.
_PALETTE = [("#b0b0b0", "#606060"), ("#9ecae1", "#2171b5"), ("#fdbe85", "#d94701"),
            ("#a1d99b", "#238b45"), ("#cbc9e2", "#6a51a3")]


def _color(kernels: list[str], kernel: str, cg: str) -> str:
    pair = _PALETTE[kernels.index(kernel) % len(_PALETTE)]
    return pair[0] if cg == ROOT else pair[1]


def render_svg(stats: dict[Key, Stats], mode: str, accel: str) -> str:
    """Small multiples: one panel per (op, variant), each on its own scale,
    since dup() and pipe() differ by an order of magnitude."""
    kernels = kernels_of(stats)
    width, label_w, bar_h, gap = 900, 170, 16, 3
    panel_h = 26 + 2 * len(kernels) * (bar_h + gap) + 14
    rws = rows(stats)
    height = 70 + panel_h * len(rws)
    plot_w = width - label_w - 150
    unit = "ns per op = guest instructions" if mode == "icount" else "ns per op, WALL-CLOCK"
    title = escape(f"memcg accounting of struct file: {' vs '.join(kernels)} — {unit}")
    sub = escape(mode_label(mode, accel))
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
          f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
          f'<rect width="{width}" height="{height}" fill="white"/>',
          f'<text x="10" y="22" font-size="15" font-weight="bold">{title}</text>',
          f'<text x="10" y="40" fill="#444">{sub}</text>',
          '<text x="10" y="56" fill="#444">bars: median; whiskers: min-max over repeats'
          '</text>']
    y = 70
    for op, variant in rws:
        ovs = ", ".join(f"{k} {pct(overhead(stats, k, op, variant))}" for k in kernels)
        el.append(f'<text x="10" y="{y + 16}" font-weight="bold">'
                  f'{escape(row_label(op, variant))}</text>')
        el.append(f'<text x="{width - 10}" y="{y + 16}" fill="#444" text-anchor="end">'
                  f'{escape(f"memcg overhead: {ovs}")}</text>')
        bars = [(k, cg, stats.get((k, op, cg))) for k in kernels for cg in (ROOT, variant)]
        top = max((st.max for _, _, st in bars if st), default=1.0) or 1.0
        by = y + 26
        for k, cg, st in bars:
            color = _color(kernels, k, cg)
            name = f"{k} {cg.replace('_', ' ')}"
            el.append(f'<text x="{label_w}" y="{by + bar_h - 4}" text-anchor="end">'
                      f'{escape(name)}</text>')
            if st:
                w = plot_w * st.median / top
                x0, x1 = label_w + 8 + plot_w * st.min / top, label_w + 8 + plot_w * st.max / top
                mid = by + bar_h / 2
                el.append(f'<rect x="{label_w + 8}" y="{by}" width="{w:.1f}" height="{bar_h}" '
                          f'fill="{color}"><title>{escape(name)}: {st.min:.1f} / '
                          f'{st.median:.1f} / {st.max:.1f} ns</title></rect>')
                el.append(f'<line x1="{x0:.1f}" y1="{mid}" x2="{x1:.1f}" y2="{mid}" '
                          'stroke="black"/>')
                for x in (x0, x1):
                    el.append(f'<line x1="{x:.1f}" y1="{by + 3}" x2="{x:.1f}" '
                              f'y2="{by + bar_h - 3}" stroke="black"/>')
                el.append(f'<text x="{label_w + 14 + plot_w * st.max / top:.1f}" '
                          f'y="{by + bar_h - 4}">{st.median:.1f}</text>')
            by += bar_h + gap
        y += panel_h
    el.append("</svg>")
    return "\n".join(el) + "\n"
