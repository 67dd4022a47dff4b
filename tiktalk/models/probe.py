"""Does the knowledge reach the response? A probe that works on any model that scores responses.

For every dialogue the reference response is scored (per-token negative log-likelihood, nats)
three times, changing only the knowledge segment:

* ``own``: the dialogue's own knowledge;
* ``shuffled``: the knowledge of another dialogue (a seeded derangement, so never its own);
* ``none``: no knowledge at all.

Only dialogues with knowledge take part (``n``); those without (a response that used no KB
triple, say) are left out and counted (``n_without_knowledge``), since their three
conditions would not differ. A model that reads its knowledge finds the reference likelier with its own knowledge than with
someone else's: ``delta_shuffled = nll_shuffled - nll_own > 0``. ``delta_none`` separates "uses
knowledge" from "is disturbed by the segment's absence". Intervals are percentile bootstraps
over dialogues (dialogue-level resampling: the dialogue is the unit the claim is about).

For generated responses, ``copy_rate`` is the share of responses that contain a span (>= 2
characters) of their knowledge that is not in their context; ``copy_rate_references`` is the
same for the references, the rate a model that copies as people do would show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tiktalk.errors import UsageError
from tiktalk.types import DialogueExample

CONDITIONS = ("own", "shuffled", "none")


@dataclass
class ProbeResult:
    n: int  # dialogues scored (those with knowledge)
    nll_own: float
    nll_shuffled: float
    nll_none: float
    delta_shuffled: float
    delta_shuffled_ci95: tuple[float, float]
    delta_none: float
    delta_none_ci95: tuple[float, float]
    copy_rate: float | None = None
    copy_rate_references: float | None = None
    n_without_knowledge: int = 0  # dialogues left out: no knowledge to compare
    seed: int = 0
    n_bootstrap: int = 1000

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        lo, hi = self.delta_shuffled_ci95
        left_out = f", {self.n_without_knowledge} without knowledge left out" if self.n_without_knowledge else ""
        line = (f"knowledge probe (n={self.n}{left_out}): NLL/token own {self.nll_own:.3f}, shuffled {self.nll_shuffled:.3f}, "
                f"none {self.nll_none:.3f}; shuffled-own {self.delta_shuffled:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        if self.copy_rate is not None:
            line += f"; knowledge spans copied: {self.copy_rate:.0%} of responses (references {self.copy_rate_references:.0%})"
        return line


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation with no fixed point (n >= 2): position i takes item perm[i] != i."""
    if n < 2:
        raise UsageError(f"the shuffled-knowledge condition needs at least 2 dialogues, got {n}")
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            return perm


def per_token_nll(model, examples: Sequence[DialogueExample], batch_size: int) -> np.ndarray:
    """(n,) mean NLL per token of each example's response."""
    scored = model.score(examples, batch_size=batch_size)
    return np.array([total / max(count, 1) for total, count in scored], dtype=np.float64)


def bootstrap_ci(values: np.ndarray, n_bootstrap: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean of ``values`` (n,) under resampling of its rows."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(values), size=(n_bootstrap, len(values)))
    means = values[index].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def has_copied_span(response: str, knowledge: str, context: Sequence[str], min_chars: int = 2) -> bool:
    """True if ``response`` contains a substring (>= min_chars) of ``knowledge`` absent from the context."""
    context_text = "".join(context)
    for start in range(len(response) - min_chars + 1):
        span = response[start : start + min_chars]
        if span in knowledge and span not in context_text:
            return True
    return False


def copy_rate(responses: Sequence[str], examples: Sequence[DialogueExample]) -> float:
    hits = [has_copied_span(r, e.knowledge or "", e.context) for r, e in zip(responses, examples)]
    return float(np.mean(hits)) if hits else 0.0


def probe_knowledge(
    model,
    examples: Sequence[DialogueExample],
    *,
    seed: int = 0,
    n_bootstrap: int = 1000,
    batch_size: int = 32,
    generated: Sequence[str] | None = None,
) -> ProbeResult:
    """Score the references under own / shuffled / no knowledge; see the module docstring.

    ``examples`` carry their own knowledge in ``.knowledge`` and a reference in ``.response``;
    those without knowledge are left out (counted in ``n_without_knowledge``), and so are
    their entries of ``generated``.
    """
    examples = list(examples)
    if generated is not None:
        if len(generated) != len(examples):
            raise UsageError(f"{len(generated)} generated responses for {len(examples)} dialogues")
        generated = [g for g, e in zip(generated, examples) if e.knowledge]
    total = len(examples)
    examples = [e for e in examples if e.knowledge]
    if len(examples) < 2:
        raise UsageError(f"{len(examples)} of {total} dialogues have knowledge; the probe compares knowledge "
                         "conditions over at least 2")
    no_response = [e.dialogue_id for e in examples if e.response is None]
    if no_response:
        raise UsageError(f"{len(no_response)} dialogues have no reference response (e.g. {no_response[:3]})")
    perm = derangement(len(examples), seed)
    variants = {
        "own": examples,
        "shuffled": [dataclasses.replace(e, knowledge=examples[j].knowledge) for e, j in zip(examples, perm)],
        "none": [dataclasses.replace(e, knowledge=None) for e in examples],
    }
    nll = {name: per_token_nll(model, rows, batch_size) for name, rows in variants.items()}
    d_shuffled, d_none = nll["shuffled"] - nll["own"], nll["none"] - nll["own"]
    result = ProbeResult(
        n=len(examples),
        n_without_knowledge=total - len(examples),
        nll_own=float(nll["own"].mean()),
        nll_shuffled=float(nll["shuffled"].mean()),
        nll_none=float(nll["none"].mean()),
        delta_shuffled=float(d_shuffled.mean()),
        delta_shuffled_ci95=bootstrap_ci(d_shuffled, n_bootstrap, seed),
        delta_none=float(d_none.mean()),
        delta_none_ci95=bootstrap_ci(d_none, n_bootstrap, seed + 1),
        seed=seed,
        n_bootstrap=n_bootstrap,
    )
    if generated is not None:
        result.copy_rate = copy_rate(generated, examples)
        result.copy_rate_references = copy_rate([e.response for e in examples], examples)
    return result
