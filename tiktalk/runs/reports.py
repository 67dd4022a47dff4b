"""The markdown the experiments write and print: Table 3 beside the paper, the KdConv suite, KG stats."""

from __future__ import annotations

from typing import Any

from tiktalk.metrics import METRIC_KEYS, METRIC_LABELS
from tiktalk.paper import TABLE3


def render_kg_stats(s: dict) -> str:
    lines = [f"nodes {s['nodes']}  heads {s['heads']}  tails {s['tails']}  isolated {s['isolated_nodes']}"]
    lines.append("nodes by kind: " + ", ".join(f"{k} {v}" for k, v in s["nodes_by_kind"].items()))
    lines.append(f"triples {s['triples']}: " + ", ".join(f"{k} {v}" for k, v in s["triples_by_relation"].items()))
    if s["kb_triples"]:
        lines.append(f"KB triples {s['kb_triples']}: "
                     + ", ".join(f"{k} {v}" for k, v in s["kb_triples_by_attribute"].items()))
    lines.append(f"flow edges {s['flow_edges']}: " + ", ".join(f"{k} {v}" for k, v in s["flow_edges_by_type"].items()))
    lines.append("flow edges by family: " + ", ".join(f"{k} {v}" for k, v in s["flow_edges_by_family"].items()))
    if s["unknown_types"]:
        lines.append("unknown edge types (kept): " + ", ".join(f"{k} {v}" for k, v in s["unknown_types"].items()))
    return "\n".join(lines)


def _provenance_lines(results: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(a caveat above the numbers, a provenance table below them) for rows that carry one."""
    rows = {key: r["provenance"] for key, r in results.items() if "provenance" in r}
    if not rows:
        return [], []
    caveat = []
    bad = {key: p["not_comparable_because"] for key, p in rows.items() if not p["comparable_to_paper"]}
    if bad:
        shared = [r for r in next(iter(bad.values())) if all(r in reasons for reasons in bad.values())]
        text = f"**Not comparable to the paper**: {len(bad)} of {len(rows)} rows"
        text += f" ({'; '.join(shared)})." if shared else "."
        text += "".join(f" {TABLE3[k].label}: {'; '.join(r for r in reasons if r not in shared)}."
                        for k, reasons in bad.items() if any(r not in shared for r in reasons))
        caveat = [text, ""]
    off_recipe = {key: p.get("recipe_deviations") or [] for key, p in rows.items()
                  if p.get("follows_paper_recipe") is False}
    if off_recipe:
        caveat += ["**Not the paper's recipe**: " + " ".join(
            f"{TABLE3[k].label}: {'; '.join(reasons)}." for k, reasons in off_recipe.items()), ""]
    header = ("| system | data (manifest sha256) | refs/dialogue | reads | present | steps | global batch "
              "| distinct responses | paper's recipe | comparable to paper |")
    table = ["", header, "|---|---|---:|---|---|---:|---:|---:|---|---|"]
    recipe_mark = {True: "yes", False: "**no**", None: "?"}
    for key, p in rows.items():
        missing = ", ".join(f"{m} {share:.0%}" for m, share in p["presence"].items() if share < 1)
        present = p["modalities_present"] + (f" ({missing})" if missing else "")
        steps = "-" if p["steps"] is None else str(p["steps"])
        batch = "-" if p.get("global_batch_size") is None else str(p["global_batch_size"])
        table.append(f"| {TABLE3[key].label} | {p['dataset']} ({p['dataset_sha256'][:12]}) | "
                     f"{p['references_per_dialogue']} | {p['modalities_read']} | {present} | {steps} | {batch} | "
                     f"{results[key]['distinct_responses']:.1f}% | {recipe_mark[p.get('follows_paper_recipe')]} | "
                     f"{'yes' if p['comparable_to_paper'] else 'no'} |")
    return caveat, table


def comparison_markdown(results: dict[str, dict], note: str = "") -> str:
    """Ours beside the paper's, one pair of lines per row; provenance and caveat when known."""
    caveat, provenance = _provenance_lines(results)
    lines = [*caveat, "| system | source | " + " | ".join(METRIC_LABELS[k] for k in METRIC_KEYS) + " |",
             "|---|---|" + "---:|" * len(METRIC_KEYS)]
    for key, scores in results.items():
        row = TABLE3[key]
        ours = ["-" if scores.get(k) is None else f"{scores[k]:.2f}" for k in METRIC_KEYS]
        lines.append(f"| {row.label} | ours | " + " | ".join(ours) + " |")
        lines.append("| | paper | " + " | ".join(f"{row.scores[k]:.2f}" for k in METRIC_KEYS) + " |")
    lines += provenance
    if note:
        lines += ["", note]
    return "\n".join(lines)


def probe_line(probe: dict[str, Any]) -> str:
    if "delta_shuffled" not in probe:
        return f"NLL/token (no knowledge) {probe['nll_none']:.3f} over {probe['n']} dialogues"
    lo, hi = probe["delta_shuffled_ci95"]
    return (f"NLL/token own {probe['nll_own']:.3f}, shuffled {probe['nll_shuffled']:.3f}, none {probe['nll_none']:.3f}; "
            f"shuffled-own {probe['delta_shuffled']:+.3f} [{lo:+.3f}, {hi:+.3f}] over {probe['n']} dialogues")


def kdconv_markdown(result: dict[str, Any], command: str) -> str:
    """The probe and the metrics of the three runs, one line each, with what they were measured on."""
    test = result["test"]
    lines = ["| run | NLL/token own | shuffled | none | shuffled - own (95% CI) | none - own (95% CI) | "
             + " | ".join(METRIC_LABELS[k] for k in METRIC_KEYS) + " | distinct |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * (len(METRIC_KEYS) + 1)]
    for name, run in result["runs"].items():
        p, m = run["probe"], run["metrics"]
        if "delta_shuffled" in p:
            probe = [f"{p['nll_own']:.3f}", f"{p['nll_shuffled']:.3f}", f"{p['nll_none']:.3f}",
                     "{:+.3f} [{:+.3f}, {:+.3f}]".format(p["delta_shuffled"], *p["delta_shuffled_ci95"]),
                     "{:+.3f} [{:+.3f}, {:+.3f}]".format(p["delta_none"], *p["delta_none_ci95"])]
        else:
            probe = ["-", "-", f"{p['nll_none']:.3f}", "-", "-"]
        scores = ["-" if m.get(k) is None else f"{m[k]:.2f}" for k in METRIC_KEYS]
        lines.append(f"| {name} | " + " | ".join(probe + scores) + f" | {m['distinct_responses']:.1f}% |")
    metrics_on = test["metrics_on"]
    lines += ["", f"Probe: {test['probe_on']['dialogues']} of the {test['with_gold_knowledge']} test dialogues with "
              "gold knowledge (the same for every run, each with its own knowledge; T reads none). Metrics (%): "
              + (f"**the first {metrics_on['dialogues']} of {test['dialogues']} test dialogues (a subset)**"
                 if metrics_on["subset"] else f"all {test['dialogues']} test dialogues")
              + f", one reference each. Of the probed dialogues, {test['gold_entity_retrieved']:.0%} have the gold "
              f"entity among the retrieved heads and {test['gold_value_retrieved']:.0%} a gold value in the retrieved "
              "segment."]
    if test.get("knowledge_use"):
        lines += ["", ("What each knowledge cache holds of the values the probed responses used (whole value in the "
                       "segment; over the responses whose used value fits the budget; a value or a part of one; empty "
                       "segments):"), "",
                  "| knowledge | value in segment | when it fits | value or part | empty |", "|---|---:|---:|---:|---:|"]
        for label, u in test["knowledge_use"].items():
            lines.append(f"| {label} | {u['gold_value_in_segment']:.3f} | {u.get('gold_value_in_segment_fits', 0):.3f} "
                         f"| {u['gold_part_in_segment']:.3f} | {u['empty_share']:.3f} |")
    over_all = [f"{name} {run['probe']['nll_own_all']:.3f}" for name, run in result["runs"].items()
                if "nll_own_all" in run["probe"]]
    if over_all:
        t = next((run["probe"]["nll_none"] for run in result["runs"].values() if not run.get("knowledge")), None)
        lines += ["", "NLL/token over every probed dialogue with its own segment, empty ones included (the probe "
                  "above leaves empty segments out): " + ", ".join(([f"T {t:.3f}"] if t is not None else []) + over_all)
                  + "."]
    lines += ["", f"Made by: `{command}`"]
    return "\n".join(lines)
