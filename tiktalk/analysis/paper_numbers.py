"""The paper's dataset analyses as published (TikTalk, ACM MM 2023): Table 2, Table 5,
Table 6, Figure 2(b) and appendix A.3, for the ``analyze`` reports to print beside ours."""

from __future__ import annotations

# Table 2: data division. Turns = utterances counted per dialogue (Turns / Dialogues = Avg-t).
TABLE2: dict[str, dict[str, float]] = {
    "train": {"Videos": 35703, "Dialogues": 363589, "Turns": 816170, "Avg-v": 34.01, "Avg-t": 2.24, "Avg-l": 16.42},
    "val": {"Videos": 1000, "Dialogues": 1353, "Turns": 3495, "Avg-v": 36.93, "Avg-t": 2.58, "Avg-l": 16.06},
    "test": {"Videos": 2000, "Dialogues": 2728, "Turns": 7087, "Avg-v": 36.42, "Avg-t": 2.60, "Avg-l": 16.25},
    "total": {"Videos": 38703, "Dialogues": 367670, "Turns": 826752, "Avg-v": 34.03, "Avg-t": 2.25, "Avg-l": 16.41},
}

# Table 5 (appendix A.1): videos per Douyin topic category.
TABLE5: dict[str, int] = {
    "Science": 8448, "Short play": 4684, "Gaming": 4265, "Lifestyle": 3592, "Recording": 2487,
    "Food": 1973, "Creativity": 1660, "Parenting": 1596, "Campus": 822, "Others": 9176,
}

# Table 6 (appendix A.2): visual-relevant responses whose most similar frame lies in each
# fifth of the video.
TABLE6: dict[str, int] = {"0-20%": 224, "20-40%": 172, "40-60%": 229, "60-80%": 194, "80-100%": 227}

# Figure 2(b): shares of TikTalk responses needing each context source (section 3.3.1: "42%
# vision, 10% audio and 34% knowledge"; text "close to 80%", so 0.80 is approximate).
FIGURE2B_TIKTALK: dict[str, float] = {"text": 0.80, "vision": 0.42, "audio": 0.10, "knowledge": 0.34}
FIGURE2B_SAMPLE = {"videos": 300, "responses": 2472}

# Appendix A.3: 100 knowledge-related responses, 72 general and 28 personalized.
KNOWLEDGE_TYPES: dict[str, float] = {"general": 0.72, "personalized": 0.28}
