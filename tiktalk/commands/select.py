"""``tiktalk select train``: learn which knowledge pieces responses use (retrieval.select_train)."""

from __future__ import annotations

import argparse

from tiktalk.commands import RegistryHelp, add_group, add_json_flag, emit, print_notice
from tiktalk.options import COUNT, FOLDS, NON_NEGATIVE, POSITIVE, POSITIVE_INT, SEED


def register(sub: argparse._SubParsersAction) -> None:
    def defaults(name: str) -> str:  # help read from the library when shown (no heavy import for --help)
        from retrieval.selection import DEFAULT_CANDIDATE_HEADS, DEFAULT_NAMED_HEADS
        from retrieval.selector import ABSTAIN_RULES, TrainSettings

        return {"candidate_heads": f"dense heads whose pieces are candidates (default {DEFAULT_CANDIDATE_HEADS})",
                "named_heads": f"heads the context names, most recent first (default {DEFAULT_NAMED_HEADS})",
                "steps": f"full-batch Adam steps (default {TrainSettings.steps})",
                "lr": f"learning rate (default {TrainSettings.lr})",
                "seed": f"seed (default {TrainSettings.seed})",
                "abstain_credit": "what an empty segment where the response used no candidate is worth beside a "
                                  "segment holding a used piece: a context is kept where the odds of the first "
                                  "against the second reach it (default "
                                  f"{TrainSettings.abstain_credit}; 1: the most contexts decided right; 0: never "
                                  "abstain)",
                "abstain_rule": f"how the abstention is learned, one of {', '.join(ABSTAIN_RULES)} (default "
                                f"{TrainSettings.abstain_rule}); context: a logistic gate on the best piece's logit "
                                "and the context's cues (a question in its last turns, lengths, last-turn bigrams), "
                                "fitted on cross-fitted train and val probabilities; fitted: a threshold on the best "
                                "probability where a logistic fit on val reaches the credit; step: the best "
                                "threshold of the step function on val",
                "gate_folds": f"folds of the training split cross-fitted for the context gate (default "
                              f"{TrainSettings.gate_folds})"}[name]

    select_sub = add_group(sub, "select", "learned knowledge selection")
    p = select_sub.add_parser("train", help="fit a piece selector on a dataset's (context, response) pairs")
    p.add_argument("--data", required=True, help="dataset directory (or 'sample'); its train split labels, "
                   "its val split picks the step and the abstain threshold")
    p.add_argument("--index", required=True, help="index directory from `tiktalk index build` (--pieces makes "
                   "training faster: no piece is encoded twice)")
    p.add_argument("--out", required=True, help="selector directory to write (selector.json + selector.safetensors)")
    p.add_argument("--labels", choices=("auto", "gold", "pseudo"), default="auto",
                   help="gold: the dataset's gold_attrs.jsonl (KdConv import); pseudo: pieces whose content the "
                        "response contains and the context does not; auto: gold when the dataset has it")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    for name, bounds in (("candidate_heads", COUNT), ("named_heads", COUNT), ("steps", POSITIVE_INT)):
        flag = f"--{name.replace('_', '-')}"
        p.add_argument(flag, type=bounds.parse(flag), default=None,
                       help=RegistryHelp(lambda name=name: defaults(name)))
    p.add_argument("--lr", type=POSITIVE.parse("--lr"), default=None, help=RegistryHelp(lambda: defaults("lr")))
    p.add_argument("--seed", type=SEED.parse("--seed"), default=None, help=RegistryHelp(lambda: defaults("seed")))
    p.add_argument("--abstain-credit", type=NON_NEGATIVE.parse("--abstain-credit"), default=None,
                   help=RegistryHelp(lambda: defaults("abstain_credit")))
    p.add_argument("--abstain-rule", type=_abstain_rule, default=None,
                   help=RegistryHelp(lambda: defaults("abstain_rule")))
    p.add_argument("--gate-folds", type=FOLDS.parse("--gate-folds"), default=None,
                   help=RegistryHelp(lambda: defaults("gate_folds")))
    p.add_argument("--model", default="maria", help="the model whose knowledge budget the validation segments are "
                   "cut to (default maria; 'none' with --max-tokens: characters)")
    p.add_argument("--max-tokens", type=POSITIVE_INT.parse("--max-tokens"), default=None, help="another budget length")
    p.add_argument("--workers", type=POSITIVE_INT.parse("--workers"), default=1, help="encoder worker processes (default 1)")
    p.add_argument("--overwrite", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=_train)


def _abstain_rule(text: str) -> str:
    # the library's list, imported only when the flag is given (torch is heavy for --help)
    from retrieval.selector import ABSTAIN_RULES

    if text not in ABSTAIN_RULES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(ABSTAIN_RULES)}, got {text!r}")
    return text


def _render(r: dict) -> str:
    v = r["validation"]
    rule = "gate" if r["threshold"] is None else f"threshold {r['threshold']:.3f}"
    return (f"wrote {r['out']}: labels from {r['labels_from']}; {r['train']['contexts']} training contexts, "
            f"{100 * r['train']['contexts_with_label']:.1f}% with a used piece; {rule} "
            f"(abstain credit {r['training']['abstain_credit']}, rule {r['validation']['rule']})\n"
            f"val: used piece in segment {v['at_threshold']['used_in_segment']:.3f} "
            f"(no abstention {v['no_abstain']['used_in_segment']:.3f}, dense {v['dense']['used_in_segment']:.3f}), "
            f"abstain {v['at_threshold']['abstain_share']:.3f}")


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from retrieval.selection import SelectionConfig
    from retrieval.selector import TrainSettings
    from tiktalk.io import refuse_overlap
    from tiktalk.runs.select import train_dataset_selector

    refuse_overlap(args.out, [("--data", args.data), ("--index", args.index)], may_write_inside=("--data", "--index"))
    given = {"steps": args.steps, "lr": args.lr, "seed": args.seed, "abstain_credit": args.abstain_credit,
             "abstain_rule": args.abstain_rule, "gate_folds": args.gate_folds}
    settings = dataclasses.replace(TrainSettings(), **{k: v for k, v in given.items() if v is not None})
    heads = {"candidate_heads": args.candidate_heads, "named_heads": args.named_heads}
    result = train_dataset_selector(
        args.data, args.index, args.out, labels=args.labels, train_split=args.train_split, val_split=args.val_split,
        selection=SelectionConfig(**{k: v for k, v in heads.items() if v is not None}),
        settings=settings, model=args.model, max_tokens=args.max_tokens, workers=args.workers,
        overwrite=args.overwrite, progress=not args.json, on_notice=print_notice)
    emit(args, result, _render)
    return 0
