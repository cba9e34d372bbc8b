"""The review page's motion plot: driver vs output mouth opening and head yaw, with the bounds that apply.

Drawn as inline SVG from the numbers a check result recorded (`pipeline.checks.motion.MotionReport
.audit_details()`): mouth opening on the left axis, yaw (each series centred on its own median, as
scored) on the right. The shaded bands are the driver's series plus and minus the policy's review
bound on the mean difference (`motion.mouth_mean_difference`, `motion.yaw_mean_difference`): an
output that keeps inside them on average is within the bound. Every point carries its frame number;
`static/motion_plot.js` seeks both videos to it on a click (the page allows scripts from itself
only, never inline).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 240, 48, 48, 12, 30
MOUTH, YAW = "#1f5fbf", "#b35c00"
SCRIPT = Path(__file__).resolve().parent / "static" / "motion_plot.js"

router = APIRouter()


@router.get("/static/motion_plot.js", name="motion_plot_script")
def motion_plot_script() -> FileResponse:
    """The plot's click-to-seek script (a file: the content security policy forbids inline scripts)."""
    return FileResponse(
        SCRIPT, media_type="text/javascript", headers={"cache-control": "public, max-age=3600"}
    )


def _numbers(values: object) -> list[float] | None:
    if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
        return None
    return [float(v) for v in values]


def _centred(values: list[float]) -> list[float]:
    finite = [v for v in values if v == v]
    middle = statistics.median(finite) if finite else 0.0
    return [v - middle for v in values]


def motion_context(details: object, rules: dict[str, Any], fps: float | None = None) -> dict[str, Any]:
    """What `_motion_plot.html` needs from a check result's details and rules: the SVG, bounds, fps."""
    empty: dict[str, Any] = {"motion_plot": "", "motion_bounds": {}, "motion_fps": fps or 25.0}
    if not isinstance(details, dict):
        return empty
    motion = details.get("motion")
    if not isinstance(motion, dict) or not isinstance(motion.get("series"), dict):
        return empty
    series, frames = motion["series"], motion.get("frame_indices")
    pairs = {
        name: (
            _numbers((series.get(name) or {}).get("driving")),
            _numbers((series.get(name) or {}).get("output")),
        )
        for name in ("mouth", "yaw")
    }
    frame_list = (
        [int(f) for f in frames]
        if isinstance(frames, list) and all(isinstance(f, int) for f in frames)
        else []
    )
    if not frame_list or any(
        d is None or o is None or len(d) != len(frame_list) or len(o) != len(frame_list)
        for d, o in pairs.values()
    ):
        return empty
    motion_rules = rules.get("motion") or {}
    mouth_bound = (motion_rules.get("mouth_mean_difference") or {}).get("review_above")
    yaw_bound = (motion_rules.get("yaw_mean_difference") or {}).get("review_above")
    mouth_d, mouth_o = pairs["mouth"]
    yaw_d, yaw_o = pairs["yaw"]
    assert mouth_d is not None and mouth_o is not None and yaw_d is not None and yaw_o is not None
    svg = motion_svg(
        frame_list,
        mouth=(mouth_d, mouth_o),
        yaw=(_centred(yaw_d), _centred(yaw_o)),
        mouth_bound=mouth_bound,
        yaw_bound=yaw_bound,
    )
    bounds = {
        name: motion_rules.get(name)
        for name in ("mouth_correlation", "mouth_mean_difference", "yaw_correlation", "yaw_mean_difference")
        if isinstance(motion_rules.get(name), dict)
    }
    scores = {name: motion.get(name) for name in bounds if isinstance(motion.get(name), int | float)}
    return {"motion_plot": svg, "motion_bounds": bounds, "motion_scores": scores, "motion_fps": fps or 25.0}


def motion_svg(
    frames: Sequence[int],
    *,
    mouth: tuple[Sequence[float], Sequence[float]],
    yaw: tuple[Sequence[float], Sequence[float]],
    mouth_bound: float | None,
    yaw_bound: float | None,
) -> str:
    """Four lines (driver solid, output dashed) on two axes, bands of the review bounds, clickable points.

    Every value interpolated into the markup is a formatted number, so the SVG is safe to embed.
    """
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    x_span = max(frames[-1] - frames[0], 1)
    finite = [v for v in (*mouth[0], *mouth[1]) if v == v]
    mouth_top = max([*finite, 0.05]) * 1.2 + (mouth_bound or 0.0)
    yaw_values = [abs(v) for v in (*yaw[0], *yaw[1]) if v == v]
    yaw_top = max([*yaw_values, 2.0]) * 1.2 + (yaw_bound or 0.0)

    def px(frame: float) -> float:
        return PAD_L + (frame - frames[0]) / x_span * inner_w

    def py_mouth(value: float) -> float:
        return PAD_T + inner_h - max(value, 0.0) / mouth_top * inner_h

    def py_yaw(value: float) -> float:
        return PAD_T + inner_h / 2 - value / yaw_top * (inner_h / 2)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="mouth opening and head yaw, driver and output, per frame">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{inner_w}" height="{inner_h}" fill="#fff" stroke="#d6dce3"/>',
    ]
    for bound, driver, to_y, colour, name in (
        (mouth_bound, mouth[0], py_mouth, MOUTH, "mouth"),
        (yaw_bound, yaw[0], py_yaw, YAW, "yaw"),
    ):
        if bound is None:
            continue
        kept = [(f, v) for f, v in zip(frames, driver, strict=True) if v == v]
        upper = " ".join(f"{px(f):.1f},{to_y(v + bound):.1f}" for f, v in kept)
        lower = " ".join(f"{px(f):.1f},{to_y(v - bound):.1f}" for f, v in reversed(kept))
        parts.append(
            f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.12" stroke="none" '
            f'class="bound bound-{name}"/>'
        )
    for fraction in (0.0, 0.5, 1.0):
        value = mouth_top * fraction
        parts.append(
            f'<text x="{PAD_L - 6}" y="{py_mouth(value) + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{MOUTH}">{value:.2f}</text>'
        )
    for value in (-yaw_top, 0.0, yaw_top):
        parts.append(
            f'<text x="{WIDTH - PAD_R + 6}" y="{py_yaw(value) + 4:.1f}" font-size="11" '
            f'fill="{YAW}">{value:+.0f}°</text>'
        )
    parts.append(f'<text x="{PAD_L}" y="{HEIGHT - 8}" font-size="11" fill="#5b6673">frame {frames[0]}</text>')
    parts.append(
        f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 8}" font-size="11" text-anchor="end" '
        f'fill="#5b6673">frame {frames[-1]}</text>'
    )
    for (driver, output), to_y, colour, name in (
        (mouth, py_mouth, MOUTH, "mouth"),
        (yaw, py_yaw, YAW, "yaw"),
    ):
        for values, side, dash in ((driver, "driving", ""), (output, "output", ' stroke-dasharray="5 3"')):
            kept = [(f, v) for f, v in zip(frames, values, strict=True) if v == v]
            points = " ".join(f"{px(f):.1f},{to_y(v):.1f}" for f, v in kept)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"{dash} '
                f'class="series {name}-{side}"/>'
            )
            for f, v in kept:
                parts.append(
                    f'<circle cx="{px(f):.1f}" cy="{to_y(v):.1f}" r="3" fill="{colour}" '
                    f'fill-opacity="{1.0 if side == "driving" else 0.5}" data-frame="{int(f)}" '
                    f'class="seek"><title>frame {int(f)}</title></circle>'
                )
    parts.append("</svg>")
    return "".join(parts)
