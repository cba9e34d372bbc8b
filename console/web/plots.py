"""The per-frame identity-distance plot: a small inline SVG drawn from numbers only (no user text)."""

from __future__ import annotations

from collections.abc import Sequence

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 220, 48, 12, 12, 30


def identity_svg(distances: Sequence[float], *, threshold: float | None, frames: Sequence[int] | None = None) -> str:
    """A line of per-frame distances with the threshold as a dashed red line; points above it in red.

    Every value interpolated into the markup is a formatted float or int, so the SVG is safe to embed.
    """
    values = [float(d) for d in distances]
    if not values:
        return ""
    xs = list(frames) if frames is not None and len(frames) == len(values) else list(range(len(values)))
    top = max(values + ([threshold] if threshold is not None else [])) * 1.15 or 1.0
    x_span = max(xs[-1] - xs[0], 1)
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def px(frame: float) -> float:
        return PAD_L + (frame - xs[0]) / x_span * inner_w

    def py(value: float) -> float:
        return PAD_T + inner_h - value / top * inner_h

    points = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, values, strict=True))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="identity distance per frame">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{inner_w}" height="{inner_h}" fill="#fff" stroke="#d6dce3"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        parts.append(f'<text x="{PAD_L - 6}" y="{py(value) + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#5b6673">{value:.3f}</text>')
    parts.append(f'<text x="{PAD_L}" y="{HEIGHT - 8}" font-size="11" fill="#5b6673">frame {xs[0]}</text>')
    parts.append(f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 8}" font-size="11" text-anchor="end" '
                 f'fill="#5b6673">frame {xs[-1]}</text>')
    if threshold is not None:
        y = py(threshold)
        parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#b3261e" '
                     f'stroke-dasharray="6 4" class="threshold"/>')
        parts.append(f'<text x="{WIDTH - PAD_R - 4}" y="{y - 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#b3261e">threshold {threshold:.3f}</text>')
    parts.append(f'<polyline points="{points}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>')
    for x, v in zip(xs, values, strict=True):
        over = threshold is not None and v > threshold
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="{3 if over else 2}" '
                     f'fill="{"#b3261e" if over else "#1f5fbf"}"/>')
    parts.append("</svg>")
    return "".join(parts)


def per_frame_series(details: object) -> tuple[list[float], list[int] | None]:
    """The per-frame distances of a check result's identity details (`FidelityResult.audit_details()`).

    `distances` holds one value per sampled frame (None where no face was found: left out of the line,
    listed separately on the page); frame numbers are `i * every`, or `frame_indices` when recorded.
    """
    if not isinstance(details, dict):
        return [], None
    series = details.get("distances")
    if not isinstance(series, list) or not series:
        return [], None
    indices = details.get("frame_indices") or details.get("frames")
    every = details.get("every")
    if isinstance(indices, list) and len(indices) == len(series) and all(isinstance(i, int) for i in indices):
        frames = [int(i) for i in indices]
    elif isinstance(every, int) and every > 0:
        frames = [i * every for i in range(len(series))]
    else:
        frames = list(range(len(series)))
    kept = [(f, float(v)) for f, v in zip(frames, series, strict=True) if isinstance(v, int | float)]
    return [v for _, v in kept], [f for f, _ in kept]
