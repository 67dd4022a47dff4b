"""Automatic metrics of the TikTalk paper (section 4.1): BLEU-2/4, METEOR, ROUGE-L, CIDEr, Dist-2/3.

Similarity metrics are the coco-caption scorers that nlg-eval runs (``pycocoevalcap`` 1.2:
``Bleu(4)``, ``Meteor``, ``Rouge``, ``Cider``; no PTB tokenizer, no SPICE, nothing is
downloaded). Every score is reported as a percentage (x 100), like the paper's Table 3.

Tokenizers (what the scorers see: tokens joined by single spaces):

- ``char`` (default): every non-whitespace character is one token; whitespace only
  separates and is dropped. This applies to ASCII too: ``"yes 666!"`` -> ``y e s 6 6 6 !``.
  It is how the LCCC / CDial-GPT corpora store Chinese (``"y s l 7 号 唇 釉"``, ``"2 1 万"``),
  so text that is already space-separated characters tokenizes to itself.
- ``whitespace``: split on runs of whitespace (nlg-eval's behaviour on pre-tokenized text).

Protocols:

- ``per-reference`` (default, the paper's): every conversation has K references (5 on
  TikTalk val/test); for j = 1..K score the whole set with the j-th reference of every
  conversation as its only reference (corpus-level, as nlg-eval does), then average the K
  scores of each metric.
- ``corpus``: plain multi-reference corpus scoring (what ``nlg-eval`` does with K
  reference files).

Dist-n does not use references: distinct n-grams over all n-grams of all hypotheses
(n-grams never cross a response boundary). :func:`distinct_responses` (distinct whole
responses / contexts) shows a model that gives every context the same reply.

The metrics are a fixed table, not a registry: :data:`METRIC_KEYS` is the paper's Table 3,
and BLEU/ROUGE-L/CIDEr come out of one coco-caption pass per reference set, so there is no
second implementation to choose by name. A new metric: its key in :data:`METRIC_KEYS` and
:data:`METRIC_LABELS`, its value in :func:`evaluate`. Tokenizers are chosen by name
(``--tokenizer``) and live in the registry :data:`TOKENIZERS`.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from tiktalk.errors import UsageError
from tiktalk.registry import Registry

METRIC_KEYS: tuple[str, ...] = ("bleu_2", "bleu_4", "meteor", "rouge_l", "cider", "dist_2", "dist_3")
METRIC_LABELS: dict[str, str] = {
    "bleu_2": "BLEU-2", "bleu_4": "BLEU-4", "meteor": "METEOR", "rouge_l": "ROUGE-L",
    "cider": "CIDEr", "dist_2": "Dist-2", "dist_3": "Dist-3",
}
PROTOCOLS: tuple[str, ...] = ("per-reference", "corpus")


class MeteorUnavailableError(RuntimeError):
    """METEOR was asked for but Java (or the METEOR jar) cannot run."""


# ----------------------------------------------------------------------------- tokenizers


def char_tokenize(text: str) -> list[str]:
    """Every non-whitespace character is a token (Chinese, ASCII letters, digits, punctuation)."""
    return [ch for ch in text if not ch.isspace()]


def whitespace_tokenize(text: str) -> list[str]:
    return text.split()


TOKENIZERS: Registry[Callable[[str], list[str]]] = Registry("tokenizer", {
    "char": char_tokenize,
    "whitespace": whitespace_tokenize,
})


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    return TOKENIZERS.get(name)


# ----------------------------------------------------------------------------- Dist-n


def distinct_n(responses: Sequence[str], n: int, tokenizer: str = "char") -> float:
    """Distinct n-grams / all n-grams over all responses, as a fraction in [0, 1].

    n-grams are taken inside each response; a corpus with no n-gram at all scores 0.0.
    """
    if n < 1:
        raise UsageError(f"distinct_n: n must be >= 1, got {n}")
    tokenize = get_tokenizer(tokenizer)
    total = 0
    seen: set[tuple[str, ...]] = set()
    for response in responses:
        tokens = tokenize(response)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def distinct_responses(responses: Sequence[str]) -> float:
    """Distinct responses / responses (one per context), as a fraction in [0, 1].

    A model that answers every context with the same reply scores 1 / N however varied that
    reply is (which Dist-n cannot show). Responses compare as whole strings; 0.0 for none.
    """
    return len(set(responses)) / len(responses) if responses else 0.0


# ----------------------------------------------------------------------------- METEOR


def _meteor_jar() -> Path:
    from pycocoevalcap.meteor import meteor as coco_meteor

    return Path(coco_meteor.__file__).resolve().parent / coco_meteor.METEOR_JAR


class MeteorScorer:
    """One METEOR 1.5 JVM (the jar inside pycocoevalcap), reused across calls.

    Same command line and stdio protocol as ``pycocoevalcap.meteor.Meteor`` (hence
    nlg-eval), but the SCORE lines are streamed by a writer thread instead of one
    round trip per pair: same numbers (tested), ~3x faster. Starting the JVM and loading
    the paraphrase table takes ~10 s, so keep one scorer for all K references.
    """

    def __init__(self) -> None:
        java = shutil.which("java")
        if java is None:
            raise MeteorUnavailableError(
                "METEOR needs Java, but no `java` executable is on PATH; install a JRE "
                "(e.g. openjdk-17-jre-headless) or pass --no-meteor (meteor=False) to skip METEOR"
            )
        jar = _meteor_jar()
        if not jar.exists():
            raise MeteorUnavailableError(f"METEOR jar {jar} is missing (reinstall pycocoevalcap)")
        cmd = [java, "-jar", "-Xmx2G", str(jar), "-", "-", "-stdio", "-l", "en", "-norm"]
        self._proc = subprocess.Popen(
            cmd, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a PIPE nobody reads could fill and block the JVM
        )

    def _readline(self) -> str:
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.poll()
            raise MeteorUnavailableError(
                f"the METEOR Java process stopped (exit code {code}); check that `java -jar "
                f"{_meteor_jar()}` runs, or pass --no-meteor"
            )
        return line.decode("utf-8").strip()

    def score(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
        """Corpus METEOR of space-tokenized hypotheses against lists of references."""
        lines = []
        for hyp, refs in zip(hypotheses, references, strict=True):
            # pycocoevalcap's cleanup of the hypothesis; '|||' is the protocol's separator
            hyp = hyp.replace("|||", "").replace("  ", " ")
            refs = [r.replace("|||", "") for r in refs]
            lines.append(" ||| ".join(("SCORE", " ||| ".join(refs), hyp)))
        payload = ("\n".join(lines) + "\n").encode("utf-8")

        def write() -> None:
            try:
                self._proc.stdin.write(payload)
                self._proc.stdin.flush()
            except BrokenPipeError:  # reported by _readline
                pass

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        stats = [self._readline() for _ in lines]
        writer.join()
        self._proc.stdin.write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode("utf-8"))
        self._proc.stdin.flush()
        for _ in lines:  # per-pair scores; the corpus score follows
            self._readline()
        return float(self._readline())

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.kill()
            self._proc.wait()

    def __del__(self) -> None:  # a forgotten close() must not leave a JVM behind
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- coco scores


def corpus_scores(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    meteor: MeteorScorer | None = None,
) -> dict[str, float]:
    """nlg-eval's corpus scores (fractions, not %) of already space-tokenized text.

    Returns bleu_1..bleu_4, rouge_l, cider, and meteor when a scorer is given.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    res = {i: [h] for i, h in enumerate(hypotheses)}
    gts = {i: list(refs) for i, refs in enumerate(references)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out = {f"bleu_{k + 1}": float(b) for k, b in enumerate(bleu)}
    out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    out["cider"] = float(Cider().compute_score(gts, res)[0])
    if meteor is not None:
        out["meteor"] = meteor.score(hypotheses, references)
    return out


def _validate(hypotheses: Sequence[str], references: Sequence[Sequence[str]], protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise UsageError("hypotheses and references must be lists, not a single string")
    if len(hypotheses) != len(references):
        raise UsageError(
            f"{len(hypotheses)} hypotheses but {len(references)} reference lists: counts must match"
        )
    if not hypotheses:
        raise UsageError("nothing to evaluate: 0 hypotheses")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise UsageError(f"conversation {i}: references must be a non-empty list of strings, got {refs!r}")
    if protocol == "per-reference":
        k = len(references[0])
        for i, refs in enumerate(references):
            if len(refs) != k:
                raise UsageError(
                    f"per-reference protocol needs the same number of references everywhere: "
                    f"conversation 0 has {k}, conversation {i} has {len(refs)} (use --protocol corpus)"
                )


def evaluate(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    tokenizer: str = "char",
    protocol: str = "per-reference",
    meteor: bool | MeteorScorer = True,
    progress: bool = False,
) -> dict[str, float | None]:
    """BLEU-2, BLEU-4, METEOR, ROUGE-L, CIDEr, Dist-2, Dist-3 in percent (Table 3 keys).

    hypotheses: N responses; references: N lists of references (K each for
    ``per-reference``). ``meteor=False`` reports ``meteor: None`` (never a silent 0); with
    ``meteor=True`` and no Java, :class:`MeteorUnavailableError` is raised. A
    :class:`MeteorScorer` may be passed to reuse one JVM over several calls (not closed here).
    """
    _validate(hypotheses, references, protocol)
    tokenize = get_tokenizer(tokenizer)

    def join(text: str) -> str:
        return " ".join(tokenize(text))

    hyps = [join(h) for h in hypotheses]
    refs = [[join(r) for r in rs] for rs in references]
    for i, rs in enumerate(refs):
        for j, r in enumerate(rs):
            if not r:
                raise UsageError(f"conversation {i}: reference {j + 1} is empty after {tokenizer} tokenization")

    if protocol == "corpus":
        ref_sets = [refs]
    else:  # the j-th reference of every conversation as its only reference
        ref_sets = [[[rs[j]] for rs in refs] for j in range(len(refs[0]))]

    own_scorer = meteor is True
    scorer = MeteorScorer() if own_scorer else (meteor or None)
    try:
        runs = []
        sets = ref_sets
        if progress:
            from tqdm import tqdm

            sets = tqdm(ref_sets, desc=f"scoring ({protocol})", unit="ref set")
        for ref_set in sets:
            runs.append(corpus_scores(hyps, ref_set, scorer))
    finally:
        if own_scorer and scorer is not None:
            scorer.close()

    def mean(key: str) -> float:
        return 100.0 * sum(run[key] for run in runs) / len(runs)

    return {
        "bleu_2": mean("bleu_2"),
        "bleu_4": mean("bleu_4"),
        "meteor": mean("meteor") if scorer is not None else None,
        "rouge_l": mean("rouge_l"),
        "cider": mean("cider"),
        "dist_2": 100.0 * distinct_n(hypotheses, 2, tokenizer),
        "dist_3": 100.0 * distinct_n(hypotheses, 3, tokenizer),
    }


def markdown_table(rows: dict[str, dict[str, float | None]], digits: int = 2) -> str:
    """A Table-3-style markdown table: one row per system, one column per metric (%)."""
    header = "| system | " + " | ".join(METRIC_LABELS[k] for k in METRIC_KEYS) + " |"
    rule = "|---|" + "---:|" * len(METRIC_KEYS)
    lines = [header, rule]
    for name, scores in rows.items():
        cells = ["-" if scores.get(k) is None else f"{scores[k]:.{digits}f}" for k in METRIC_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
