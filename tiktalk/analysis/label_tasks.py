"""The label tasks (what annotators fill in), apart from the scoring code so that
``tiktalk --help`` reads them without importing numpy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelTask:
    name: str
    columns: tuple[str, ...]  # the columns annotators fill (besides skip)
    categories: tuple[str, ...]  # what shares are reported for
    multi: bool  # several categories per response (one 0/1 column each) or exactly one


TASKS: dict[str, LabelTask] = {
    "context-source": LabelTask("context-source", ("text", "vision", "audio", "knowledge"),
                                ("text", "vision", "audio", "knowledge"), multi=True),
    "knowledge-type": LabelTask("knowledge-type", ("knowledge_type",), ("general", "personalized"), multi=False),
}
