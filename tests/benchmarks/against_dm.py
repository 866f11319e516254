"""DataDAM variants of a distillation benchmark against their DM twins, network by network.

``bench_distill.py`` writes these rows into its markdown table, and the docs hook into the
site's distillation page, so both read the same from the same JSON.
"""

from __future__ import annotations

# Settings that only DataDAM has: a DataDAM variant's DM twin has the same options without them.
DATADAM_ONLY = ("attention_power", "sam_weight", "init")


def against_dm_rows(entries: list[dict], model: str = "convnet3") -> list[str]:
    """Markdown lines comparing every DataDAM entry with the DM entry of the same IPC and
    shared options (``compare_results``: the bench evaluates every set with the same seed,
    so network i of both starts from the same weights); no lines when no entry has a twin."""
    from datadam.evaluate import EvaluationResult, compare_results, comparison_text

    rows = []
    for e in entries:
        if e["method"] != "datadam":
            continue
        shared = {k: v for k, v in e["options"].items() if k not in DATADAM_ONLY}
        twin = next((d for d in entries if d["method"] == "dm" and d["ipc"] == e["ipc"]
                     and d["options"] == shared), None)
        if twin is None:
            continue
        c = compare_results(EvaluationResult.from_dict(twin["evaluation"]),
                            EvaluationResult.from_dict(e["evaluation"]))[model]
        text = comparison_text(c, missing="–")
        rows.append(f"| {e['variant']} | {e['ipc']} | {twin['variant']} | {text['difference']} | "
                    f"{text['interval']} | {text['p']} | {text['ahead']} |")
    if not rows:
        return []
    return ["", "DataDAM against DM network by network (`datadam compare-evaluations`): the "
            "difference in points of every evaluation network (the same seed, so the same "
            "initial weights), its mean ± std, the 95 % interval of the mean (Student's t), "
            "the paired t-test's p and on how many networks DataDAM was ahead. Each method "
            "distilled one set (one seed): the interval covers the evaluation networks, not "
            "the spread between distillation seeds, which at IPC 10 is larger than any gap "
            "between the methods (`datadam merge-evaluations --replicates` compares recipes "
            "over seeds).", "",
            "| variant | IPC | against | DataDAM - DM | 95 % interval | p | DataDAM ahead |",
            "|---|---|---|---|---|---|---|", *rows]
