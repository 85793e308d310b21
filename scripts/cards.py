#!/usr/bin/env python3
"""Regenerates the model card (tags/NAME.md) of each trained function tag from measurements.

    python3 scripts/cards.py [NAME ...] [--limit N]

For each tag: `tagllm eval` on the task's test split (per-row predictions kept), metrics overall
and per source, side by side with data/baselines.json (training mean, expert baselines) and the
provenance the trainer stored in the tag. Every number in a card comes from this command.
"""
import argparse, csv, json, math, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = {
    # name: (task dir, input columns for eval, protein column, what it predicts)
    "QED": ("QED", "smiles", None, "QED, the quantitative estimate of drug-likeness (RDKit `QED.qed`, 0 to 1)"),
    "LogP": ("LogP", "smiles", None, "Crippen logP (RDKit `Crippen.MolLogP`)"),
    "Descriptor": ("Descriptor", "sequence", None, "the protein descriptor AF1 (`peptides`)"),
    "pI": ("pI", "sequence", None, "the isoelectric point (`peptides`)"),
    "BindingAffinity": ("BindingAffinity", "smiles", "sequence", "DAVIS binding affinity pKd"),
}


def metrics(pred, targ):
    n = len(pred)
    if n == 0:
        return {"n": 0}
    mse = sum((p - t) ** 2 for p, t in zip(pred, targ)) / n
    mae = sum(abs(p - t) for p, t in zip(pred, targ)) / n
    mt, mp = sum(targ) / n, sum(pred) / n
    sst = sum((t - mt) ** 2 for t in targ)
    sp = math.sqrt(sum((p - mp) ** 2 for p in pred)); sq = math.sqrt(sst)
    pear = sum((p - mp) * (t - mt) for p, t in zip(pred, targ)) / (sp * sq) if sp > 0 and sq > 0 else float("nan")

    def ranks(xs):
        order = sorted(range(len(xs)), key=lambda i: xs[i]); r = [0.0] * len(xs); i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r
    rp, rt = ranks(pred), ranks(targ)
    mrp, mrt = sum(rp) / n, sum(rt) / n
    a = math.sqrt(sum((x - mrp) ** 2 for x in rp)); b = math.sqrt(sum((y - mrt) ** 2 for y in rt))
    spear = sum((x - mrp) * (y - mrt) for x, y in zip(rp, rt)) / (a * b) if a > 0 and b > 0 else float("nan")
    return {"n": n, "mse": mse, "rmse": math.sqrt(mse), "mae": mae, "pearson": pear, "spearman": spear,
            "r2": 1 - mse * n / sst if sst > 0 else float("nan")}


def joined_test(task_dir, tmp):
    """The test split with inputs inline (joins DAVIS ids to ligands/proteins)."""
    path = os.path.join(task_dir, "test.csv")
    rows = list(csv.DictReader(open(path)))
    if "ligand_id" in rows[0]:
        lig = {r["ligand_id"]: r["smiles"] for r in csv.DictReader(open(os.path.join(task_dir, "ligands.csv")))}
        pro = {r["protein_id"]: r["sequence"] for r in csv.DictReader(open(os.path.join(task_dir, "proteins.csv")))}
        for r in rows:
            r["smiles"], r["sequence"] = lig[r["ligand_id"]], pro[r["protein_id"]]
    out = os.path.join(tmp, "test.csv")
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys())); w.writeheader(); w.writerows(rows)
    return out, rows


def fmt(v):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def card(name, limit, ablation):
    task, col, pcol, what = TASKS[name]
    tag_path = os.path.join(ROOT, "tags", f"{name}.safetensors")
    if not os.path.exists(tag_path):
        print(f"{name}: no trained tag at {tag_path}; skipped", file=sys.stderr)
        return
    binary = os.path.join(ROOT, "target", "release", "tagllm")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    task_dir = os.path.join(ROOT, "data", "tasks", task)
    with tempfile.TemporaryDirectory() as tmp:
        test_csv, rows = joined_test(task_dir, tmp)
        preds = os.path.join(tmp, "preds.csv")
        cmd = [binary, "eval", "--tag", name, "--data", test_csv, "--input-col", col, "--target-col", "target",
               "--predictions", preds, "--batch", "16"]
        if pcol:
            cmd += ["--protein-col", pcol]
        if limit:
            cmd += ["--limit", str(limit)]
        t0 = time.time()
        report = json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
        eval_s = time.time() - t0
        by_line = {}
        for r in csv.DictReader(open(preds)):
            if r["prediction"]:
                by_line[int(r["line"])] = (float(r["prediction"]), float(r["target"]))
    # line numbers are 1-based file lines: row i of the split is line i + 2
    sources = {}
    for i, r in enumerate(rows):
        hit = by_line.get(i + 2)
        if hit:
            sources.setdefault(r.get("source", "all"), []).append(hit)
    meta = json.loads(subprocess.run([binary, "tags", "show", name], cwd=ROOT, check=True,
                                     capture_output=True, text=True).stdout)
    base = json.load(open(os.path.join(ROOT, "data", "baselines.json"))).get(task, {})
    prov = meta.get("provenance", {})
    ours = {k: report[k] for k in ("n", "mse", "rmse", "mae", "pearson", "spearman", "r2")}
    lines = [f"# `<{name}>` — model card", "",
             f"Predicts {what}. Template: `{meta['template']!r}`. Base model: `{meta['base_model']['name']}` "
             f"(GGUF sha256 `{meta['base_model']['gguf_sha256'][:16]}…`), p = {meta['p']}; domain tags: "
             + ", ".join(f"`<{r['name']}>`" for r in meta["requires"]) + ".", "",
             "## Training", "",
             f"- data: `data/tasks/{task}/train.csv` ({prov.get('train_examples', '?')} valid examples available, "
             f"{prov.get('options', {}).get('steps', 0) * prov.get('options', {}).get('batch', 0)} seen = steps × batch), validation "
             f"`valid.csv`; see `data/README.md` for sources and splits",
             f"- options: `{json.dumps(prov.get('options', {}))}`; best validation step {prov.get('best_step', '?')}",
             f"- validation metrics at that step: `{json.dumps(prov.get('valid_metrics', {}))}`", "",
             f"## Test metrics (`data/tasks/{task}/test.csv`, n = {report['n']}, {report['n_invalid']} rows not predicted)", "",
             "| model | n | MSE | MAE | Pearson | Spearman | R² |", "| --- | --- | --- | --- | --- | --- | --- |",
             f"| **`<{name}>` (this tag)** | {ours['n']} | {fmt(ours['mse'])} | {fmt(ours['mae'])} | {fmt(ours['pearson'])} | {fmt(ours['spearman'])} | {fmt(ours['r2'])} |"]
    only = next(iter(sources)) if len(sources) == 1 else None
    if only and only != "all":
        lines.insert(-3, f"Evaluated on the `{only}` part of the test split only; baselines below are on the same part.")
        lines.insert(-3, "")
    for bname, b in base.items():
        if isinstance(b, dict) and "mse" in b:
            if only and only in b.get("per_source", {}):
                b = dict(b["per_source"][only])
            lines.append(f"| {bname} | {b.get('n', '—')} | {fmt(b.get('mse'))} | {fmt(b.get('mae'))} | {fmt(b.get('pearson'))} | {fmt(b.get('spearman'))} | {fmt(b.get('r2'))} |")
    probe_path = os.path.join(ROOT, "tags", f"{name}.probe.json")
    if ablation:
        cmd = [binary, "train", "probe", "--template", meta["template"], "--train", os.path.join(task_dir, "train.csv"),
               "--valid", os.path.join(task_dir, "valid.csv"), "--test", os.path.join(task_dir, "test.csv"),
               "--input-cols", ",".join([c for c in (pcol, col) if c]), "--max-train", "1000", "--max-valid", "200"]
        if limit:
            cmd += ["--max-test", str(limit)]
        probe = json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
        json.dump(probe, open(probe_path, "w"), indent=1)
    if os.path.exists(probe_path):
        pr = json.load(open(probe_path)); t = pr["test"]
        lines += [f"| same prompt without tags + ridge head (ablation, {pr['train_examples']} train) | {t['n']} | {fmt(t['mse'])} | {fmt(t['mae'])} | {fmt(t['pearson'])} | {fmt(t['spearman'])} | {fmt(t['r2'])} |", ""]
    else:
        lines += ["| same prompt without tags (ablation) | — | not measured yet (`--ablation`) | | | | |", ""]
    if len(sources) > 1:
        lines += ["### Per source", "", "| source | n | MSE | Pearson | R² | best baseline R² |", "| --- | --- | --- | --- | --- | --- |"]
        for s, pairs in sorted(sources.items()):
            m = metrics([p for p, _ in pairs], [t for _, t in pairs])
            best = max((b.get("per_source", {}).get(s, {}).get("r2") or float("-inf") for b in base.values() if isinstance(b, dict)), default=float("nan"))
            lines.append(f"| {s} | {m['n']} | {fmt(m['mse'])} | {fmt(m['pearson'])} | {fmt(m['r2'])} | {fmt(best)} |")
        lines.append("")
    pick = lambda b: b.get("per_source", {}).get(only, b) if only else b
    best_r2 = max((pick(b).get("r2") or float("-inf") for b in base.values() if isinstance(b, dict) and "r2" in b), default=float("nan"))
    verdict = ("beats" if ours["r2"] > best_r2 else "**loses to**") + f" the best expert baseline on this split (R² {fmt(ours['r2'])} vs {fmt(best_r2)})."
    lines += ["## Verdict", "", f"This tag {verdict}", "",
              f"Regenerate: `python3 scripts/cards.py {name}` (evaluation took {eval_s:.0f} s here).", ""]
    with open(os.path.join(ROOT, "tags", f"{name}.md"), "w") as f:
        f.write("\n".join(lines))
    print(f"wrote tags/{name}.md: R² {fmt(ours['r2'])}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--limit", type=int, help="evaluate only the first N test rows")
    ap.add_argument("--ablation", action="store_true", help="also run the no-tag ablation (slow)")
    a = ap.parse_args()
    for n in a.names or TASKS:
        card(n, a.limit, a.ablation)
