"""The TikTalk paper's Table 3 rows: which model and modalities each is, and its published scores.

One place for the rows, used by ``tiktalk reproduce`` and ``tiktalk demo --all``.
Scores are the paper's test-set numbers in percent (ACM MM 2023, Table 3). Also the
release's published split sizes (section 3), which tell whether a dataset is that release.
"""

from __future__ import annotations

from dataclasses import dataclass

from tiktalk.errors import UsageError
from tiktalk.metrics import METRIC_KEYS


@dataclass(frozen=True)
class PaperRow:
    key: str  # what --models takes
    label: str  # the paper's name
    model: str  # registered ChatModel name
    modalities: str | None  # None: the model's own (a baseline's ``required_modalities``)
    knowledge: bool  # needs the C3KG knowledge cache
    scores: dict[str, float]

    @property
    def modalities_read(self) -> str:
        """The modalities the row's system reads: its own, or what the model class states it
        always reads (read through the model registry; imported here, not at the top:
        `tiktalk --help` imports this module)."""
        if self.modalities:
            return self.modalities
        from tiktalk.models.base import get_model_class
        from tiktalk.models.modalities import modality_string

        return modality_string(get_model_class(self.model).required_modalities)


def _scores(*values: float) -> dict[str, float]:
    """Table 3's columns, in the order of ``tiktalk.metrics.METRIC_KEYS``."""
    return dict(zip(METRIC_KEYS, values, strict=True))


TABLE3: dict[str, PaperRow] = {
    row.key: row
    for row in (
        PaperRow("dialogpt", "DialoGPT", "dialogpt", None, False, _scores(3.76, 0.73, 4.87, 10.43, 13.50, 26.82, 55.36)),
        PaperRow("chatglm", "ChatGLM-6B (causal LM)", "causal-lm", None, False, _scores(3.14, 0.95, 3.84, 9.34, 16.73, 36.28, 58.79)),
        PaperRow("livebot", "Livebot", "livebot", None, False, _scores(0.33, 0.06, 1.20, 4.40, 5.94, 0.10, 0.12)),
        PaperRow("blip2-img", "BLIP-2_Img", "blip2-img", None, False, _scores(3.42, 0.87, 3.77, 8.34, 12.05, 38.40, 64.63)),
        PaperRow("blip2-video", "BLIP-2_Video", "blip2-video", None, False, _scores(3.41, 0.75, 3.72, 8.11, 11.61, 37.32, 62.44)),
        PaperRow("maria", "Maria", "maria", "T+I", False, _scores(4.31, 1.48, 5.07, 11.60, 26.19, 29.31, 48.04)),
        PaperRow("maria+audio", "Maria+Audio", "maria", "T+I+A", False, _scores(3.01, 0.96, 4.15, 10.19, 20.67, 24.60, 41.11)),
        PaperRow("maria+c3kg", "Maria+C3KG", "maria", "T+I+K", True, _scores(4.74, 1.64, 5.32, 11.84, 26.95, 32.82, 54.62)),
        PaperRow("text", "Maria ablation: text", "maria", "T", False, _scores(3.35, 1.18, 4.56, 11.16, 24.90, 26.83, 43.80)),
        PaperRow("audio+text", "Maria ablation: audio+text", "maria", "T+A", False, _scores(2.92, 0.95, 4.13, 10.19, 20.52, 23.95, 39.78)),
        PaperRow("c3kg+text", "Maria ablation: C3KG+text", "maria", "T+K", True, _scores(4.34, 1.56, 5.09, 11.65, 26.78, 31.24, 51.38)),
    )
}


def parse_rows(spec: str) -> list[PaperRow]:
    """``"maria,maria+c3kg,dialogpt"`` (or ``all``) -> rows, in the given order."""
    keys = list(TABLE3) if spec.strip() == "all" else [k.strip() for k in spec.split(",") if k.strip()]
    unknown = [k for k in keys if k not in TABLE3]
    if unknown:
        raise UsageError(f"unknown Table 3 row(s) {unknown}; known: {list(TABLE3)} or 'all'")
    if not keys:
        raise UsageError("no Table 3 rows given")
    return [TABLE3[k] for k in dict.fromkeys(keys)]


# Table 7 (training cost) rows by their modality strings, plus the two text ablations.
TABLE7_ROWS: tuple[str, ...] = ("T", "T+I", "T+I+A", "T+I+K", "T+I+A+K", "T+A", "T+K")


# The TikTalk release (paper section 3.2): videos and dialogues per split; val and test
# dialogues have EVAL_REFERENCES ground-truth responses each.
TIKTALK_RELEASE: dict[str, dict[str, int]] = {
    "train": {"videos": 35703, "dialogues": 363589},
    "val": {"videos": 1000, "dialogues": 1353},
    "test": {"videos": 2000, "dialogues": 2728},
}


def release_mismatches(stats: dict) -> list[str]:
    """How a dataset's ``stats()`` differs from the TikTalk release ([] when it matches).

    Split sizes and references per val/test dialogue are what the paper publishes; a
    dataset matching all of them is taken to be the release (its contents are not public).
    """
    from tiktalk.dataset import (
        EVAL_REFERENCES,  # here, not at the top: `tiktalk --help` imports this module
    )

    out = []
    for split, sizes in TIKTALK_RELEASE.items():
        for key, expected in sizes.items():
            if stats[split][key] != expected:
                out.append(f"{split} has {stats[split][key]} {key}, the release {expected}")
        if split != "train" and stats[split]["with_5_references"] != stats[split]["dialogues"]:
            out.append(f"{stats[split]['dialogues'] - stats[split]['with_5_references']} {split} dialogues "
                       f"have fewer than {EVAL_REFERENCES} references")
    return out
