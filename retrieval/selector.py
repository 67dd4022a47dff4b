"""The learned selector: from a context alone, which pieces will the response use?

Trained (``tiktalk select train``) on a dataset's training split, (context, response) pairs:

- **Labels** (:func:`piece_labels`): the dataset's gold knowledge where it has it (KdConv's
  ``attrs``: a piece of the used (entity, attribute, value); of a value split into parts, the
  parts the response repeats); otherwise *pseudo-labels* from the response, a posterior in
  the spirit of PostKS: a piece whose content (tail, value, flow target) the response
  contains and the context does not.
- **Model** (:class:`SelectorModel`): a small MLP over per-piece features
  (:data:`retrieval.selection.FEATURES`: query-piece and query-head cosine, how recently the
  context named the head, lexical overlap, part position, kind, hub penalty, length) and the
  piece's relation/attribute, plus a linear adapter on the frozen query vector per
  relation/attribute (which question asks for which attribute), and a lexical one from the last
  turn's character bigrams (``几点`` asks for opening hours, ``多少钱`` for the ticket: sharper
  than one dense vector of two turns). Binary cross-entropy per
  piece; a few hundred full-batch Adam steps, the best step by validation loss.
- **Abstain**: a segment holding a used piece is worth 1, an empty one where the response used
  none of the candidates ``abstain_credit`` (default 0.5: chosen on KdConv's val split by tiny
  Marias, see docs/selection.md); a context is kept where the odds of the first against the
  second reach the credit. ``abstain_rule="context"`` (default, :class:`AbstainGate`): the odds
  from a logistic regression on the best piece's logit and the context's own cues (does its
  last turn, or the one before, ask a question; their lengths; the last turn's bigrams: a
  reply to a question recites knowledge, a reply to an answer often asks the next question),
  fitted on cross-fitted training-split probabilities and the val split. ``"fitted"``: a
  threshold on the best probability, where a one-feature logistic fit on val reaches the
  credit; ``"step"``: the best threshold of the step function on val, which moves with every
  val context.

Saved as ``selector.json`` (settings, label vocabulary, threshold or gate, validation scores, and what
it was built for: encoder fingerprint, index files, KG and data sha256) + ``selector.safetensors``;
:meth:`LearnedScorer.load` refuses a selector built for another encoder, index or KG.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kg.linearize import clean_piece as _clean
from retrieval.pieces import Piece
from retrieval.selection import (
    FEATURES,
    Candidates,
    SelectionConfig,
    below_threshold,
    bigrams,
    containment,
)
from tiktalk.errors import FormatError, MissingInputError, UsageError
from tiktalk.options import (
    COUNT,
    FOLDS,
    NON_NEGATIVE,
    POSITIVE,
    bounded,
    check_fields,
    check_option,
)

CONFIG_FILE, WEIGHTS_FILE = "selector.json", "selector.safetensors"
FORMAT = "tiktalk-selector"
FORMAT_VERSION = 4  # 2: the last turn's bigrams per relation/attribute; 3: how the context names each head; 4: gate
READABLE_VERSIONS = (3, 4)  # a version 3 selector has no gate: its threshold decides
HEAD_LABEL, OTHER_LABEL = "<head>", "<other>"
PART_MIN_OVERLAP = 0.5  # share of a part's bigrams the response repeats for the part to count as used


class SelectorMismatchError(UsageError):
    """A selector used with another encoder, index or KG than it was trained for."""


# -- labels
def gold_piece_labels(c: Candidates, attrs: Sequence[Mapping], response: str) -> np.ndarray:
    """(n_pieces,) 0/1: the pieces of the (entity, attribute, value) triples a response used.

    A whole value matches its piece; of a split value, the parts the response repeats
    (:data:`PART_MIN_OVERLAP` of their bigrams; the best part when none does). An entity used
    with none of its pieces matched (its value not among the candidates) labels its head piece.
    """
    used = {(str(a["name"]).strip(), str(a["attrname"]).strip(), _clean(str(a["attrvalue"]).strip())) for a in attrs}
    labels = np.zeros(len(c.pieces), dtype=np.float32)
    bag = bigrams(response)
    best_part: dict[tuple, tuple[float, int]] = {}
    for i, p in enumerate(c.pieces):
        if p.kind != "attribute":
            continue
        if p.part < 0 and (p.head, p.label, p.content) in used:
            labels[i] = 1
        elif p.part >= 0 and (p.head, p.label, p.value) in used:
            overlap = containment(p.content, bag)
            if overlap >= PART_MIN_OVERLAP:
                labels[i] = 1
            key = (p.head, p.label, p.value)
            if overlap > best_part.get(key, (0.0, -1))[0]:
                best_part[key] = (overlap, i)
    for key, (_, i) in best_part.items():
        if not any(labels[j] for j, p in enumerate(c.pieces) if (p.head, p.label, p.value) == key and p.part >= 0):
            labels[i] = 1
    entities = {name for name, _, _ in used}
    for i, p in enumerate(c.pieces):
        if p.kind == "head" and p.head in entities and not any(
                labels[j] for j, q in enumerate(c.pieces) if q.head_id == p.head_id):
            labels[i] = 1
    return labels


def pseudo_piece_labels(c: Candidates, response: str, response_cosine: np.ndarray | None = None,
                        min_cosine: float | None = None) -> np.ndarray:
    """(n_pieces,) 0/1 without gold, a posterior from the response: pieces whose content (2+
    characters, not the head's own text) the response contains and the context does not (what
    the response added); and, given the response's cosine to every piece (n_pieces,), the
    piece closest to the response when that cosine reaches ``min_cosine``."""
    context = "".join(c.context)
    labels = np.array([float(p.kind != "head" and len(p.content) >= 2 and p.content in response
                             and p.content not in context) for p in c.pieces], dtype=np.float32)
    if response_cosine is not None and min_cosine is not None and len(labels):
        best = int(np.argmax(response_cosine))
        if response_cosine[best] >= min_cosine:
            labels[best] = 1.0
    return labels


def piece_labels(c: Candidates, response: str, attrs: Sequence[Mapping] | None) -> np.ndarray:
    return gold_piece_labels(c, attrs, response) if attrs is not None else pseudo_piece_labels(c, response)


# -- model
class SelectorModel(nn.Module):
    """features (n, F), label ids (n,), context ids (n,) into query vectors (c, d) and into
    last-turn bigram indicators (c, G) -> logits (n,)."""

    def __init__(self, n_features: int, n_labels: int, dim: int, hidden: int = 32, n_grams: int = 0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.label_embedding = nn.Embedding(n_labels, 8)
        self.mlp = nn.Sequential(nn.Linear(n_features + 8, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        # the linear adapter: which queries ask for which relation / attribute (zero: off at start)
        self.label_query = nn.Linear(dim, n_labels, bias=False)
        nn.init.zeros_(self.label_query.weight)
        # the lexical adapter: which words of the last turn ask for which relation / attribute
        self.label_grams = nn.Linear(n_grams, n_labels, bias=False)
        nn.init.zeros_(self.label_grams.weight)

    def forward(self, features: torch.Tensor, labels: torch.Tensor, contexts: torch.Tensor,
                queries: torch.Tensor, grams: torch.Tensor) -> torch.Tensor:
        x = torch.cat([(features - self.mean) / self.std, self.label_embedding(labels)], dim=-1)
        # (c, n_labels): each context's score for each label, from its query and its last turn
        adapter = self.label_query(queries) + self.label_grams(grams)
        return self.mlp(x).squeeze(-1) + adapter[contexts, labels]


@dataclass
class Examples:
    """Stacked rows of many contexts; ``offsets[i]:offsets[i+1]`` are context i's pieces."""

    features: np.ndarray  # (n, F)
    labels: np.ndarray  # (n,) int label ids
    contexts: np.ndarray  # (n,) int: the row's context
    queries: np.ndarray  # (c, d) one query vector per context
    grams: np.ndarray  # (c, G) 0/1: which vocabulary bigrams the context's last turn holds
    targets: np.ndarray  # (n,) 0/1
    offsets: np.ndarray  # (c + 1,)

    def inputs(self) -> tuple[torch.Tensor, ...]:
        return (torch.from_numpy(self.features), torch.from_numpy(self.labels), torch.from_numpy(self.contexts),
                torch.from_numpy(self.queries), torch.from_numpy(self.grams))


def label_key(piece: Piece) -> str:
    return HEAD_LABEL if piece.kind == "head" else f"{piece.kind}:{piece.label}"


def last_turn_bigrams(c: Candidates) -> set[str]:
    return bigrams(c.context[-1]) if c.context else set()


def gram_vocabulary(batch: Sequence[Candidates], size: int) -> dict[str, int]:
    """The ``size`` bigrams most frequent in the last turns of ``batch`` (ties: first seen)."""
    from collections import Counter

    counts = Counter(g for c in batch for g in sorted(last_turn_bigrams(c)))
    return {g: i for i, (g, _) in enumerate(counts.most_common(size))}


def gram_indicators(batch: Sequence[Candidates], grams: Mapping[str, int]) -> np.ndarray:
    """(c, len(grams)) 0/1 float32: which vocabulary bigrams each context's last turn holds."""
    out = np.zeros((len(batch), len(grams)), dtype=np.float32)
    for row, c in enumerate(batch):
        cols = [grams[g] for g in last_turn_bigrams(c) if g in grams]
        out[row, cols] = 1.0
    return out


def stack_examples(batch: Sequence[Candidates], features: Sequence[np.ndarray], vocab: Mapping[str, int],
                   targets: Sequence[np.ndarray] | None = None, grams: Mapping[str, int] | None = None) -> Examples:
    other = vocab[OTHER_LABEL]
    sizes = [len(c.pieces) for c in batch]
    n = sum(sizes)
    dim = batch[0].query_vector.shape[0] if batch else 0
    return Examples(
        features=np.concatenate(features) if features else np.zeros((0, len(FEATURES)), np.float32),
        labels=np.fromiter((vocab.get(label_key(p), other) for c in batch for p in c.pieces), np.int64, n),
        contexts=np.repeat(np.arange(len(batch)), sizes).astype(np.int64),
        queries=(np.stack([c.query_vector for c in batch]).astype(np.float32) if batch
                 else np.zeros((0, dim), np.float32)),
        grams=gram_indicators(batch, grams or {}),
        targets=np.concatenate(targets).astype(np.float32) if targets else np.zeros(n, np.float32),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
    )


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-4
    hidden: int = 32
    max_labels: int = 64  # relations/attributes kept in the vocabulary (the rest share one id)
    # last-turn bigrams of the lexical adapter; 2,000 chosen by 5-fold cross-validation on KdConv's
    # training split (a used whole value in the segment: 0.774 without the adapter, 0.832 with it)
    max_grams: int = 2000
    seed: int = 0
    # what an empty segment where the response used no candidate is worth beside a segment
    # holding a used piece (choose_threshold); 0.5 chosen on KdConv's val split: tiny Marias
    # trained at the threshold it gives read their segments most (probe) and score as well
    # (NLL) as at 1's stricter one, keeping far more of the knowledge responses use
    abstain_credit: float = field(default=0.5, metadata=bounded(NON_NEGATIVE, "worth of a right abstention"))
    # how the abstention is learned: "context" (AbstainGate: the best logit and the context's
    # cues, on cross-fitted train + val), "fitted" (a threshold where a logistic fit of the odds
    # on val reaches the credit) or "step" (the best threshold of the step function on val)
    abstain_rule: str = "context"
    # the gate's last-turn bigrams and L2 strength (scikit-learn's C), and the folds whose
    # held-out probabilities it learns from; chosen by 5-fold CV on KdConv's training split
    # (kept hits + 0.5 per right abstention: threshold 0.619, gate 0.660; flat for 300-1000 bigrams)
    gate_grams: int = field(default=500, metadata=bounded(COUNT, "gate bigrams"))
    gate_c: float = field(default=0.3, metadata=bounded(POSITIVE, "gate inverse L2 strength"))
    gate_folds: int = field(default=5, metadata=bounded(FOLDS, "cross-fitting folds"))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.abstain_rule not in ABSTAIN_RULES:
            raise UsageError(f"TrainSettings.abstain_rule {self.abstain_rule!r}: expected one of "
                             f"{', '.join(ABSTAIN_RULES)}")


def train_model(train: Examples, val: Examples, vocab: Mapping[str, int], settings: TrainSettings,
                on_step: Callable[[int, float, float], None] | None = None) -> tuple[SelectorModel, dict]:
    """Full-batch Adam on BCE (positives weighted by the negatives' share); the step with the
    best validation loss is kept. Returns the model and its training record."""
    torch.manual_seed(settings.seed)
    if not train.targets.any():
        raise UsageError("the training split has no piece any response used: nothing to learn from")
    model = SelectorModel(train.features.shape[1], len(vocab), train.queries.shape[1], settings.hidden,
                          train.grams.shape[1])
    model.mean.copy_(torch.from_numpy(train.features.mean(0)))
    model.std.copy_(torch.from_numpy(train.features.std(0) + 1e-6))
    pos = float(train.targets.mean())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(min((1 - pos) / max(pos, 1e-6), 50.0)))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    xt, yt = train.inputs(), val.inputs()
    t_train, t_val = torch.from_numpy(train.targets), torch.from_numpy(val.targets)
    best, best_state, best_step, history = float("inf"), None, 0, []
    for step in range(1, settings.steps + 1):
        model.train()
        opt.zero_grad()
        loss = loss_fn(model(*xt), t_train)
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == settings.steps:
            model.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(model(*yt), t_val)) if len(val.targets) else float(loss.detach())
            history.append((step, float(loss.detach()), val_loss))
            if on_step is not None:
                on_step(step, float(loss.detach()), val_loss)
            if val_loss < best:
                best, best_step = val_loss, step
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return model, {"best_step": best_step, "best_val_loss": round(best, 6),
                   "history": [[s, round(a, 6), round(b, 6)] for s, a, b in history]}


def predict(model: SelectorModel, examples: Examples) -> list[np.ndarray]:
    """Per-context piece probabilities."""
    with torch.no_grad():
        probs = torch.sigmoid(model(*examples.inputs())).numpy()
    o = examples.offsets
    return [probs[o[i] : o[i + 1]] for i in range(len(o) - 1)]


ABSTAIN_RULES = ("context", "fitted", "step")
THRESHOLD_RULES = ("fitted", "step")


def choose_threshold(scores: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                     hits: Sequence[bool] | None = None, abstain_credit: float = 1.0,
                     rule: str = "step") -> tuple[float, dict]:
    """The abstain threshold on a context's best probability. A kept context is worth 1 when
    its segment holds a used piece (``hits``; default: its best piece is used), an abstained
    one ``abstain_credit`` when none of its candidates was used (1: the most contexts decided
    right; 0: never abstain).

    ``rule="step"``: the threshold that maximises that worth over these contexts. Tried: 0
    (never abstain), each context's best probability, and just above the highest (always
    abstain); ties go to the lower threshold (less abstention). Read off a step function of a
    few hundred contexts, it moves with every one of them.
    ``rule="fitted"``: a logistic regression (scikit-learn, default L2) of "holds a used
    piece" against "none used" on the logit of the best probability (contexts whose used piece
    the segment misses are worth 0 either way and left out); keeping is worth it where the
    fitted odds reach ``abstain_credit``, so the threshold is where they equal it. Falls back to
    ``step`` when a class is missing or the fitted slope is not positive (recorded as ``rule``).
    ``decided_right`` reports the unweighted share decided right at the chosen threshold."""
    check_option("abstain_credit", abstain_credit, NON_NEGATIVE)
    if rule not in THRESHOLD_RULES:
        raise UsageError(f"threshold rule {rule!r}: expected one of {', '.join(THRESHOLD_RULES)}")
    best_prob = best_probabilities(scores)
    if hits is None:
        hits = [bool(len(s)) and bool(t[int(np.argmax(s))]) for s, t in zip(scores, targets)]
    hit = np.asarray(hits, dtype=bool)
    none_used = np.array([not t.any() for t in targets], dtype=bool)
    if not len(best_prob):
        return 0.0, {"decided_right": 0.0, "abstain_share": 0.0, "kept_hit": 0.0, "rule": rule}
    threshold, fit, used_rule = None, None, rule
    if rule == "fitted":
        threshold, fit, why_not = _fitted_threshold(best_prob, hit, none_used, abstain_credit)
        if why_not is not None:
            used_rule = f"step (fallback: {why_not})"
    if threshold is None:
        candidates = np.unique(np.concatenate([[0.0], best_prob, [np.nextafter(best_prob.max(), np.inf)]]))
        kept_hits = np.array([float(np.sum(hit & (best_prob >= th))) for th in candidates])
        right_abstained = np.array([float(np.sum(none_used & (best_prob < th))) for th in candidates])
        threshold = float(candidates[int(np.argmax(kept_hits + abstain_credit * right_abstained))])
    worth = decision_worth(best_prob < threshold, hit, none_used)
    out = {"decided_right": round(worth["decided_right"], 4), "abstain_share": round(worth["abstain_share"], 4),
           "kept_hit": hit_share(hit, none_used), "rule": used_rule}
    if fit is not None:
        out["fit"] = fit
    return threshold, out


def best_probabilities(scores: Sequence[np.ndarray]) -> np.ndarray:
    """(c,) each context's best piece probability (0 for a context without pieces)."""
    return np.array([float(s.max()) if len(s) else 0.0 for s in scores])


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def hit_share(hits: Sequence[bool], none_used: Sequence[bool]) -> float:
    """Of the contexts whose response used a candidate, the share whose segment holds one."""
    h, n = np.asarray(hits, dtype=bool), np.asarray(none_used, dtype=bool)
    return round(float(h[~n].mean()), 4) if (~n).any() else 0.0


def one_class_only(hit: np.ndarray, rows: np.ndarray, which: str = "contexts") -> str | None:
    """Why no odds can be fitted on ``rows`` (None: both classes are there)."""
    if not hit[rows].any() or hit[rows].all():
        return f"the {which} hold only one of 'used piece in segment' and 'none used'"
    return None


def decision_worth(abstains: Sequence[bool], hits: Sequence[bool], none_used: Sequence[bool]) -> dict[str, float]:
    """Shares of contexts: kept with a used piece in the segment, abstained where none was used,
    decided right (either), and abstained."""
    a, h, n = (np.asarray(x, dtype=bool) for x in (abstains, hits, none_used))
    if not len(a):
        return {"kept_holding_used": 0.0, "abstained_none_used": 0.0, "decided_right": 0.0, "abstain_share": 0.0}
    return {"kept_holding_used": float(np.mean(~a & h)), "abstained_none_used": float(np.mean(a & n)),
            "decided_right": float(np.mean(np.where(a, n, h))), "abstain_share": float(np.mean(a))}


def _fitted_threshold(best_prob: np.ndarray, hit: np.ndarray, none_used: np.ndarray, credit: float
                      ) -> tuple[float | None, dict | None, str | None]:
    """The ``fitted`` rule: (threshold, {"intercept", "slope"}, None), or (None, None, why not)."""
    from sklearn.linear_model import LogisticRegression

    if credit == 0:
        return 0.0, None, None  # nothing is worth an abstention: no fit needed
    rows = hit | none_used
    why_not = one_class_only(hit, rows, "val contexts")
    if why_not is not None:
        return None, None, why_not
    model = LogisticRegression().fit(logit(best_prob)[rows, None], hit[rows].astype(int))
    intercept, slope = float(model.intercept_[0]), float(model.coef_[0, 0])
    if slope <= 0:
        return None, None, f"the fitted slope is {slope:.3g}: a higher probability is not likelier to hold a used piece"
    z = (np.log(credit) - intercept) / slope  # logit of the best probability where the odds equal the credit
    threshold = float(1 / (1 + np.exp(-np.clip(z, -700, 700))))
    return threshold, {"intercept": round(intercept, 6), "slope": round(slope, 6)}, None


# -- the abstain gate (abstain_rule="context")
ASKS = re.compile(r"[？?吗]")  # a turn that asks: its reply tends to recite knowledge
GATE_CUES = ("best_logit", "last_turn_asks", "turn_before_asks", "last_turn_length", "turns")


def context_cues(batch: Sequence[Candidates]) -> np.ndarray:
    """(c, 4) what a context itself says about its reply: does its last turn ask, does the turn
    before, log(1 + characters of the last turn), log(1 + turns)."""
    rows = []
    for c in batch:
        last = c.context[-1] if c.context else ""
        before = c.context[-2] if len(c.context) > 1 else ""
        rows.append((float(bool(ASKS.search(last))), float(bool(ASKS.search(before))), math.log1p(len(last)),
                     math.log1p(len(c.context))))
    return np.array(rows, dtype=np.float64).reshape(len(batch), len(GATE_CUES) - 1)


def gate_inputs(batch: Sequence[Candidates], scores: Sequence[np.ndarray], grams: Mapping[str, int]) -> np.ndarray:
    """(c, len(GATE_CUES) + len(grams)) the gate's inputs: best logit, context cues, last-turn bigrams."""
    return np.hstack([logit(best_probabilities(scores))[:, None], context_cues(batch),
                      gram_indicators(batch, grams).astype(np.float64)])


@dataclass
class AbstainGate:
    """Keep a context's segment where the fitted odds that it holds a used piece, against the
    response using none of the candidates, reach ``credit``; else abstain. A logistic
    regression on :data:`GATE_CUES` and the last turn's bigrams (``grams``), one weight each
    (``coef``: (len(GATE_CUES) + len(grams),))."""

    coef: np.ndarray
    intercept: float
    grams: dict[str, int]
    credit: float

    def log_odds(self, batch: Sequence[Candidates], scores: Sequence[np.ndarray]) -> np.ndarray:
        return gate_inputs(batch, scores, self.grams) @ self.coef + self.intercept

    def abstains(self, batch: Sequence[Candidates], scores: Sequence[np.ndarray]) -> np.ndarray:
        """(c,) bool."""
        if not len(batch):
            return np.zeros(0, dtype=bool)
        if self.credit == 0:
            return np.zeros(len(batch), dtype=bool)
        return self.log_odds(batch, scores) < math.log(self.credit)

    def as_dict(self) -> dict:
        return {"cues": list(GATE_CUES), "grams": sorted(self.grams, key=self.grams.get),
                "coef": [float(x) for x in self.coef], "intercept": float(self.intercept), "credit": self.credit}

    @classmethod
    def from_dict(cls, d: Mapping, path: Path) -> AbstainGate:
        if not isinstance(d, Mapping) or d.get("cues") != list(GATE_CUES):
            raise FormatError(f"expected cues {list(GATE_CUES)}; train the selector again", path=path,
                              field="gate.cues", value=d.get("cues") if isinstance(d, Mapping) else d)
        grams, coef = d.get("grams"), d.get("coef")
        if not isinstance(grams, list) or not all(isinstance(g, str) for g in grams):
            raise FormatError("must be a list of strings", path=path, field="gate.grams", value=grams)
        if (not isinstance(coef, list) or len(coef) != len(GATE_CUES) + len(grams)
                or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in coef)):
            raise FormatError(f"must be {len(GATE_CUES) + len(grams)} finite numbers", path=path, field="gate.coef",
                              value=coef if not isinstance(coef, list) or len(coef) < 8 else f"{len(coef)} values")
        for key in ("intercept", "credit"):
            x = d.get(key)
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or (
                    key == "credit" and x < 0):
                raise FormatError("must be a finite number" + (" >= 0" if key == "credit" else ""), path=path,
                                  field=f"gate.{key}", value=x)
        return cls(np.array(coef, dtype=np.float64), float(d["intercept"]), {g: i for i, g in enumerate(grams)},
                   float(d["credit"]))


def fit_gate(batch: Sequence[Candidates], scores: Sequence[np.ndarray], hits: Sequence[bool],
             none_used: Sequence[bool], credit: float, n_grams: int, c: float) -> tuple[AbstainGate | None, str | None]:
    """An :class:`AbstainGate` from contexts whose segment holds a used piece (``hits``) or whose
    response used none (``none_used``); the rest are worth 0 either way and left out. Returns
    (gate, None), or (None, why not) when one of the two classes is missing."""
    from sklearn.linear_model import LogisticRegression

    hit, none = np.asarray(hits, dtype=bool), np.asarray(none_used, dtype=bool)
    rows = np.flatnonzero(hit | none)
    why_not = one_class_only(hit, rows)
    if why_not is not None:
        return None, why_not
    chosen = [batch[i] for i in rows]
    grams = gram_vocabulary(chosen, n_grams)
    model = LogisticRegression(C=c, max_iter=5000).fit(gate_inputs(chosen, [scores[i] for i in rows], grams),
                                                       hit[rows].astype(int))
    return AbstainGate(model.coef_[0].astype(np.float64), float(model.intercept_[0]), grams, credit), None


# -- saving and loading
def index_fingerprint(index) -> str:
    """The index's stored files (names and sha256), hashed: which index a selector was built on."""
    files = index.manifest.get("files") or {}
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def built_for(retriever) -> dict:
    manifest = retriever.index.manifest
    return {"encoder": {"name": retriever.encoder.name, "fingerprint": retriever.encoder.fingerprint},
            "index": index_fingerprint(retriever.index), "kg_content_sha256": manifest["kg"]["content_sha256"]}


def save_selector(out: str | Path, model: SelectorModel, vocab: Mapping[str, int], grams: Mapping[str, int],
                  config: SelectionConfig, threshold: float | None, record: dict, *, gate: AbstainGate | None = None,
                  overwrite: bool = False) -> Path:
    from safetensors.torch import save as save_tensors

    from tiktalk.io import atomic_directory, write_json
    from tiktalk.versions import library_versions

    settings = config.as_dict()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "features": list(FEATURES),
            "labels": sorted(vocab, key=vocab.get), "last_turn_grams": sorted(grams, key=grams.get),
            "hidden": model.mlp[0].out_features,
            "dim": model.label_query.in_features, "selection": settings, "threshold": threshold,
            "gate": None if gate is None else gate.as_dict(),
            **record, "versions": library_versions()}
    with atomic_directory(out, overwrite=overwrite) as tmp:
        (tmp / WEIGHTS_FILE).write_bytes(save_tensors({k: v.contiguous() for k, v in model.state_dict().items()}))
        write_json(tmp / CONFIG_FILE, json.loads(json.dumps(meta, default=str, ensure_ascii=False)))
    return Path(out)


class LearnedScorer:
    """A trained selector as a piece scorer (:data:`retrieval.selection.SELECTIONS` ``learned``)."""

    name = "learned"

    def __init__(self, model: SelectorModel, vocab: dict[str, int], grams: dict[str, int], config: SelectionConfig,
                 threshold: float | None, meta: dict | None = None, gate: AbstainGate | None = None) -> None:
        self.model, self.vocab, self.grams, self.config = model.eval(), vocab, grams, config
        self.abstain_below, self.gate = threshold, gate
        self.meta = meta or {}

    def describe(self) -> dict:
        return {"name": self.name, "path": self.meta.get("path"), "threshold": self.abstain_below,
                "abstain": "gate" if self.gate is not None else "threshold" if self.abstain_below is not None else "never",
                "built_for": self.meta.get("built_for"), "validation": self.meta.get("validation")}

    def abstains(self, batch: Sequence[Candidates], scores: Sequence[np.ndarray]) -> np.ndarray:
        """(c,) bool: the contexts that get no segment (the gate's, else the threshold's)."""
        if self.gate is not None:
            return self.gate.abstains(batch, scores)
        return below_threshold(scores, self.abstain_below)

    def never_abstain(self) -> None:
        self.abstain_below, self.gate = None, None

    def score(self, batch: Sequence[Candidates]) -> list[np.ndarray]:
        from retrieval.selection import piece_features

        if not batch:
            return []
        return predict(self.model, stack_examples(batch, [piece_features(c) for c in batch], self.vocab,
                                                  grams=self.grams))

    @classmethod
    def load(cls, path: str | Path, retriever=None) -> LearnedScorer:
        """Open a saved selector; with ``retriever``, refuse one built for another encoder,
        index or KG (one line naming the mismatch)."""
        from safetensors.torch import load as load_tensors

        path = Path(path)
        config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        for f in (config_file, weights_file):
            if not f.is_file():
                raise MissingInputError(f"{path}: not a selector directory ({f.name} is missing; "
                                        "make one with `tiktalk select train`)")
        try:
            meta = json.loads(config_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"not valid JSON ({exc})", path=config_file) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise FormatError(f"not a selector (expected {FORMAT!r})", path=config_file, field="format",
                              value=meta.get("format") if isinstance(meta, dict) else meta)
        if meta.get("format_version") not in READABLE_VERSIONS:
            raise FormatError(f"format_version {' or '.join(map(str, READABLE_VERSIONS))} expected (what this "
                              "release reads); train the selector again", path=config_file, field="format_version",
                              value=meta.get("format_version"))
        if meta.get("features") != list(FEATURES):
            raise FormatError(f"not this library's features {list(FEATURES)}; train the selector again",
                              path=config_file, field="features", value=meta.get("features"))
        if retriever is not None:
            mine, theirs = built_for(retriever), meta.get("built_for", {})
            if theirs.get("encoder", {}).get("fingerprint") != mine["encoder"]["fingerprint"]:
                raise SelectorMismatchError(
                    f"{path}: selector was trained with encoder {theirs.get('encoder', {}).get('name')} "
                    f"({theirs.get('encoder', {}).get('fingerprint')}), the index uses {mine['encoder']['name']} "
                    f"({mine['encoder']['fingerprint']})")
            if theirs.get("kg_content_sha256") != mine["kg_content_sha256"]:
                raise SelectorMismatchError(f"{path}: selector was trained on KG {theirs.get('kg_content_sha256')}, "
                                            f"the index's KG is {mine['kg_content_sha256']}")
            if theirs.get("index") != mine["index"]:
                raise SelectorMismatchError(f"{path}: selector was trained on index {theirs.get('index')}, "
                                            f"this index is {mine['index']}")
        for key in ("labels", "last_turn_grams"):
            if not isinstance(meta.get(key), list) or not all(isinstance(x, str) for x in meta[key]):
                raise FormatError("must be a list of strings", path=config_file, field=key, value=meta.get(key))
        vocab = {name: i for i, name in enumerate(meta["labels"])}
        grams = {gram: i for i, gram in enumerate(meta["last_turn_grams"])}
        model = SelectorModel(len(FEATURES), len(vocab), int(meta["dim"]), int(meta["hidden"]), len(grams))
        model.load_state_dict(load_tensors(weights_file.read_bytes()))
        threshold, gate = meta.get("threshold"), meta.get("gate")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise FormatError("must be a number or null", path=config_file, field="threshold", value=threshold)
        if threshold is None and gate is None:
            raise FormatError("a selector needs a threshold or a gate", path=config_file, field="threshold",
                              value=None)
        meta["path"] = str(path)
        return cls(model, vocab, grams, SelectionConfig.from_dict(meta["selection"]),
                   None if threshold is None else float(threshold), meta,
                   None if gate is None else AbstainGate.from_dict(gate, config_file))
