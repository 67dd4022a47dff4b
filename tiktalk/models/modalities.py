"""Modality names shared by every model: ``"T+I+A+K"`` <-> ``("text", "vision", "audio", "knowledge")``."""

from __future__ import annotations

from tiktalk.errors import UsageError

MODALITIES: tuple[str, ...] = ("text", "vision", "audio", "knowledge")
# Table 7 letters; "T" is the textual context, "I" frames, "A" audio, "K" C3KG knowledge.
MODALITY_LETTERS: dict[str, str] = {"T": "text", "I": "vision", "V": "vision", "A": "audio", "K": "knowledge"}
# Modalities read from per-video feature files -> the DialogueExample field that holds them.
FEATURE_FIELDS: dict[str, str] = {"vision": "frames", "audio": "audio"}


def parse_modalities(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"T+I+K"`` / ``["text", "vision"]`` -> canonical ordered tuple of modality names."""
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.replace(",", "+").split("+") if p.strip()]
        names = []
        for part in parts:
            if part.upper() in MODALITY_LETTERS:
                names.append(MODALITY_LETTERS[part.upper()])
            elif part.lower() in MODALITIES:
                names.append(part.lower())
            else:
                raise UsageError(
                    f"modalities {spec!r}: unknown modality {part!r}; "
                    f"use letters {sorted(MODALITY_LETTERS)} or names {list(MODALITIES)}"
                )
    elif isinstance(spec, (list, tuple)):
        names = list(spec)
        for name in names:
            if name not in MODALITIES:
                raise UsageError(f"modalities {spec!r}: unknown modality {name!r}; known {list(MODALITIES)}")
    else:
        raise UsageError(f"modalities {spec!r}: expected a string such as 'T+I' or a list of names")
    if not names:
        raise UsageError(f"modalities {spec!r}: at least one modality is required")
    if len(set(names)) != len(names):
        raise UsageError(f"modalities {spec!r}: a modality is repeated")
    return tuple(m for m in MODALITIES if m in names)


def modality_string(modalities: tuple[str, ...]) -> str:
    letters = {"text": "T", "vision": "I", "audio": "A", "knowledge": "K"}
    return "+".join(letters[m] for m in MODALITIES if m in modalities)


def presence_from_run(info: dict) -> dict[str, float] | None:
    """run.json's ``features_present`` as modality name -> share present, when recorded.

    Keys may be modality names (vision, audio, knowledge), letters (I, A, K) or feature
    names (frames, audio); values a share in [0, 1] or an object with a ``fraction``.
    """
    recorded = info.get("features_present")
    if not isinstance(recorded, dict):
        return None
    out: dict[str, float] = {}
    for key, value in recorded.items():
        name = {"frames": "vision"}.get(key) or MODALITY_LETTERS.get(str(key).upper()) or (
            key if key in MODALITIES else None)
        share = value.get("fraction") if isinstance(value, dict) else value
        if name is not None and isinstance(share, (int, float)) and not isinstance(share, bool):
            out[name] = float(share)
    return out


def check_modalities(value: object, where: str) -> tuple[str, ...]:
    """``value`` if it is a canonical modalities tuple (what :func:`parse_modalities` returns),
    else a UsageError naming ``where``: strings such as ``"T+I"`` are parsed once, at the
    boundary (the command line), never again inside a model."""
    if not isinstance(value, tuple):
        hint = f"; parse it once with parse_modalities({value!r})" if isinstance(value, (str, list)) else ""
        raise UsageError(f"{where} = {value!r}: expected a tuple of modality names such as "
                         f"('text', 'vision'){hint}")
    canonical = parse_modalities(value)
    if canonical != value:
        raise UsageError(f"{where} = {value!r}: modalities go in the order {MODALITIES}, "
                         f"e.g. {canonical!r}")
    return value


def check_supported(model: str, modalities: tuple[str, ...], required: tuple[str, ...],
                    optional: tuple[str, ...]) -> None:
    """A model that always reads ``required`` and may switch ``optional`` refuses other
    modalities rather than silently ignoring them."""
    check_modalities(modalities, f"{model} modalities")
    missing = [m for m in required if m not in modalities]
    extra = [m for m in modalities if m not in required and m not in optional]
    if missing or extra:
        reads = modality_string(required) if required else "none of them necessarily"
        if optional:
            reads += " (optionally +" + "+".join(modality_string((m,)) for m in optional) + ")"
        raise UsageError(f"{model}: modalities {modality_string(modalities)} cannot be honoured; it reads {reads}")
