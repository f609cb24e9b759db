"""The benchmark's chart: a self-contained SVG (no plotting library) with three panels of horizontal bars:
distillation examples/s per tool (linear axis), inference examples/s at batch 64 and inference latency
at batch 1 (both on log axes, since the student and the teacher differ by an order of magnitude or more).
kd's bars are blue, the Python peers' grey; every bar carries its value, a bar given a spread (the lowest
and highest of several rounds) carries it as a whisker, and a run that failed or was skipped is drawn as a
labelled gap rather than left out.
"""
import math
from xml.sax.saxutils import escape

WIDTH, LABEL_W, BAR_H, GAP, PAD = 820, 230, 22, 8, 16
KD_COLOR, PEER_COLOR = "#2f6db5", "#9a9a9a"


def _fmt(v):
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _tick(t):
    return f"{t:,.0f}" if t >= 1 or t == 0 else f"{t:g}"


def _ticks(lo, hi, log):
    if log:
        return [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    step = 10 ** math.floor(math.log10(hi / 2)) if hi > 0 else 1
    for mult in (1, 2, 5, 10):
        if hi / (step * mult) <= 6:
            step *= mult
            break
    return [i * step for i in range(math.ceil(hi / step) + 1)]


def _panel(y, title, unit, bars, log, better):
    """bars: [(label, value or None, is_kd)] or [(label, value or None, is_kd, low, high)], low and high the
    spread drawn as a whisker (None: none). Returns (svg elements, height used)."""
    bars = [tuple(b) + (None, None) if len(b) == 3 else tuple(b) for b in bars]
    out = [f'<text x="{PAD}" y="{y + 14}" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<text x="{WIDTH - PAD}" y="{y + 14}" font-size="11" text-anchor="end" fill="#555">'
           f'{escape(unit)}, {escape(better)} is better{", log axis" if log else ""}</text>']
    y += 26
    values = [x for _, v, _, lo, hi in bars for x in (v, lo, hi) if x is not None and x > 0]
    plot_w = WIDTH - LABEL_W - PAD - 90
    if values:
        ticks = _ticks(min(values), max(values), log)
        if len(ticks) == 1:
            ticks.append(ticks[0] * 10)
        lo, hi = (ticks[0], ticks[-1]) if log else (0.0, ticks[-1])
    else:
        ticks, lo, hi = [], 0.0, 1.0

    def xpos(v):
        if log:
            return LABEL_W + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo) or 1)
        return LABEL_W + plot_w * (v - lo) / ((hi - lo) or 1)

    height = len(bars) * (BAR_H + GAP)
    for t in ticks:
        x = xpos(t)
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + height}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{x:.1f}" y="{y + height + 12}" font-size="10" text-anchor="middle" '
                   f'fill="#777">{_tick(t)}</text>')
    for i, (label, v, is_kd, lo_v, hi_v) in enumerate(bars):
        by = y + i * (BAR_H + GAP)
        out.append(f'<text x="{LABEL_W - 8}" y="{by + BAR_H * 0.7:.1f}" font-size="12" '
                   f'text-anchor="end">{escape(label)}</text>')
        if v is None or v <= 0:
            out.append(f'<text x="{LABEL_W + 4}" y="{by + BAR_H * 0.7:.1f}" font-size="11" fill="#b00">'
                       f'not measured (failed or skipped)</text>')
            continue
        x0 = xpos(lo) if not log else LABEL_W
        w = max(1.0, xpos(v) - x0)
        color = KD_COLOR if is_kd else PEER_COLOR
        out.append(f'<rect x="{x0:.1f}" y="{by}" width="{w:.1f}" height="{BAR_H}" fill="{color}"/>')
        end = x0 + w
        if lo_v is not None and hi_v is not None and lo_v > 0 and hi_v > lo_v:
            xl, xh, ym = xpos(lo_v), xpos(hi_v), by + BAR_H / 2
            out.append(f'<line x1="{xl:.1f}" y1="{ym:.1f}" x2="{xh:.1f}" y2="{ym:.1f}" stroke="#222"/>')
            for xw in (xl, xh):
                out.append(f'<line x1="{xw:.1f}" y1="{by + 5}" x2="{xw:.1f}" y2="{by + BAR_H - 5}" stroke="#222"/>')
            end = max(end, xh)
        out.append(f'<text x="{end + 5:.1f}" y="{by + BAR_H * 0.7:.1f}" font-size="11">{_fmt(v)}</text>')
    out.append(f'<line x1="{LABEL_W}" y1="{y}" x2="{LABEL_W}" y2="{y + height}" stroke="#333"/>')
    return out, 26 + height + 30


def make_svg(title, subtitle, panels):
    """panels: [(title, unit, bars, log, 'higher'|'lower')] -> SVG text."""
    body, y = [], 56
    for p in panels:
        elems, h = _panel(y, *p)
        body += elems
        y += h
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" '
            f'viewBox="0 0 {WIDTH} {y}" font-family="Helvetica, Arial, sans-serif">',
            f'<rect width="{WIDTH}" height="{y}" fill="white"/>',
            f'<text x="{PAD}" y="22" font-size="16" font-weight="bold">{escape(title)}</text>',
            f'<text x="{PAD}" y="42" font-size="11" fill="#555">{escape(subtitle)}</text>']
    return "\n".join(head + body + ["</svg>"]) + "\n"
