"""The per-frame identity-distance plot: a small inline SVG drawn from numbers only (no user text).

The horizontal lines are the policy bounds that relate to per-frame distances (the fidelity bounds, see
`identity_bounds`); those the job was actually flagged by are drawn strong and red, the others faint.
Each point carries its frame number (`data-frame`) so the review page's script can seek the players to it,
and the SVG carries its frame-to-x mapping so the script can move a playhead line along it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 220, 48, 12, 12, 30

# Per-frame distances are summarised as these two policy scores: their bounds are the ones to draw.
FIDELITY_SCORES = (("fidelity_worst5_distance", "worst 5%"), ("fidelity_mean_distance", "mean"))


@dataclass(frozen=True)
class Bound:
    """One horizontal line: the policy bound `value` of `score`, and whether the job was flagged by it."""

    score: str
    label: str
    value: float
    applied: bool


def _named_in(reasons: Sequence[str], score: str, kind: str) -> bool:
    """Whether a policy reason (`fidelity_worst5_distance 0.09 > review bound 0.07`) names this bound."""
    return any(reason.startswith(f"{score} ") and f"> {kind} bound" in reason for reason in reasons)


def identity_bounds(rules: dict[str, Any], reasons: Sequence[str], identity: object) -> list[Bound]:
    """The bounds to draw for a job: the fidelity review bounds always, a reject bound when it applied;
    with no policy rules on record, the face model's own threshold (recorded with the distances)."""
    found: list[Bound] = []
    ident = rules.get("identity") if isinstance(rules.get("identity"), dict) else {}
    for score, label in FIDELITY_SCORES:
        bound = ident.get(score) if isinstance(ident, dict) else None
        if not isinstance(bound, dict):
            continue
        for kind in ("review", "reject"):
            value = bound.get(f"{kind}_above")
            applied = _named_in(reasons, score, kind)
            if isinstance(value, int | float) and (kind == "review" or applied):
                found.append(Bound(score, f"{label} {kind} > {float(value):.3f}", float(value), applied))
    if not found and isinstance(identity, dict) and isinstance(identity.get("threshold"), int | float):
        value = float(identity["threshold"])
        found.append(Bound("model_threshold", f"model threshold {value:.3f}", value, False))
    return found


def identity_svg(
    distances: Sequence[float], *, bounds: Sequence[Bound] = (), frames: Sequence[int] | None = None
) -> str:
    """A line of per-frame distances with each bound as a dashed line; points above the lowest applied
    bound (or, when none applied, the lowest bound) in red.

    Every value interpolated into the markup is a formatted float or int, so the SVG is safe to embed.
    """
    values = [float(d) for d in distances]
    if not values:
        return ""
    xs = list(frames) if frames is not None and len(frames) == len(values) else list(range(len(values)))
    top = max(values + [b.value for b in bounds]) * 1.15 or 1.0
    x_span = max(xs[-1] - xs[0], 1)
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    applied = [b.value for b in bounds if b.applied]
    cut = min(applied) if applied else min((b.value for b in bounds), default=None)

    def px(frame: float) -> float:
        return PAD_L + (frame - xs[0]) / x_span * inner_w

    def py(value: float) -> float:
        return PAD_T + inner_h - value / top * inner_h

    points = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, values, strict=True))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="identity distance per frame" data-first-frame="{xs[0]}" data-last-frame="{xs[0] + x_span}" '
        f'data-left="{PAD_L}" data-width="{inner_w}">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{inner_w}" height="{inner_h}" fill="#fff" stroke="#d6dce3"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        parts.append(
            f'<text x="{PAD_L - 6}" y="{py(value) + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#5b6673">{value:.3f}</text>'
        )
    parts.append(f'<text x="{PAD_L}" y="{HEIGHT - 8}" font-size="11" fill="#5b6673">frame {xs[0]}</text>')
    parts.append(
        f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 8}" font-size="11" text-anchor="end" '
        f'fill="#5b6673">frame {xs[-1]}</text>'
    )
    for index, bound in enumerate(bounds):
        y = py(bound.value)
        colour, css = ("#b3261e", "bound applied") if bound.applied else ("#8a96a3", "bound")
        parts.append(
            f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-width="{1.5 if bound.applied else 1}" stroke-dasharray="6 4" class="{css}" '
            f'data-bound="{bound.value:.4f}"/>'
        )
        parts.append(
            f'<text x="{WIDTH - PAD_R - 4}" y="{y - 4 - 11 * (index % 2):.1f}" font-size="11" '
            f'text-anchor="end" fill="{colour}">{_label(bound)}</text>'
        )
    parts.append(f'<polyline points="{points}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>')
    for x, v in zip(xs, values, strict=True):
        over = cut is not None and v > cut
        parts.append(
            f'<circle class="pt" data-frame="{x}" cx="{px(x):.1f}" cy="{py(v):.1f}" r="{4 if over else 3}" '
            f'fill="{"#b3261e" if over else "#1f5fbf"}"><title>frame {x}: {v:.4f}</title></circle>'
        )
    parts.append(
        f'<line class="playhead" x1="{PAD_L}" x2="{PAD_L}" y1="{PAD_T}" y2="{PAD_T + inner_h}" '
        f'stroke="#1d232b" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _label(bound: Bound) -> str:
    """The bound's label; built only from fixed words and a number (the SVG carries no user text)."""
    words = dict(FIDELITY_SCORES).get(bound.score, "model threshold")
    if bound.score == "model_threshold":
        return f"model threshold {bound.value:.3f}"
    kind = "reject" if "reject" in bound.label else "review"
    return f"{words} {kind} &gt; {bound.value:.3f}"


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
