"""The closed lists a consent and a job are written in: purposes, channels, territories.

A consent and a job must use the same words, or coverage cannot be decided; anything else is refused.
Territories are ISO 3166-1 alpha-2 codes; `WORLD` in a consent covers every territory.
"""

from __future__ import annotations

from collections.abc import Iterable

from governance.errors import ValidationFailed

# `model_training`: the footage may train a model (governance.models_registry); it covers no rendering use.
TRAINING_PURPOSE = "model_training"
PURPOSES = frozenset(
    {
        "advertising",
        "editorial",
        "entertainment",
        "education",
        "internal_communication",
        "public_service",
        TRAINING_PURPOSE,
    }
)
CHANNELS = frozenset(
    {"web", "social_media", "broadcast", "streaming", "cinema", "in_store", "events", "internal"}
)
WORLD = "WORLD"
ISO_3166_ALPHA2 = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW
    BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ
    FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ
    IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH
    MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL
    PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD
    TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW""".split()
)
TERRITORIES = ISO_3166_ALPHA2 | {WORLD}

_LISTS = {"purpose": PURPOSES, "channel": CHANNELS, "territory": TERRITORIES}


def check_term(kind: str, value: str) -> str:
    """Return `value` if it is a known `kind` (purpose/channel/territory), else refuse naming it."""
    allowed = _LISTS[kind]
    if value not in allowed:
        hint = "ISO 3166-1 alpha-2 codes or WORLD" if kind == "territory" else ", ".join(sorted(allowed))
        raise ValidationFailed(f"unknown {kind} {value!r} (allowed: {hint})")
    return value


def check_terms(kind: str, values: Iterable[str]) -> list[str]:
    """Validate a non-empty list of terms; return it sorted and without duplicates."""
    cleaned = sorted({check_term(kind, value) for value in values})
    if not cleaned:
        raise ValidationFailed(f"at least one {kind} is required")
    return cleaned
