#!/usr/bin/env python3
"""Regenerates the model card (tags/NAME.md) of each trained function tag from measurements.

    python3 scripts/cards.py [NAME ...] [--ablation] [--full]

For each tag: `tagllm eval` on its evaluation set (per-row predictions kept), metrics overall and
per source, side by side with every baseline on exactly the same rows (per-row baseline
predictions from scripts/data/baselines.py in data/baselines/TASK.csv), the no-tag ablation
(`tagllm train probe`, same rows) and the provenance the trainer stored in the tag. Every number
in a card comes from this command.

Evaluation sets (CPU time on 2 cores is the limit; `--full` evaluates whole test splits):
QED and LogP on the MOSES scaffold-test part of their test split (the issue's split, 2,000 rows);
pI and Descriptor on 200 test proteins drawn with a fixed seed; BindingAffinity on every test pair
of 40 DAVIS proteins drawn with a fixed seed.
"""
import argparse, csv, json, math, os, random, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = {
    # name: (task dir, input columns for the prompt in order, what it predicts, evaluation subset)
    "QED": ("QED", ["smiles"], "QED, the quantitative estimate of drug-likeness (RDKit `QED.qed`, 0 to 1)",
            ("source", "moses_scaffold")),
    "LogP": ("LogP", ["smiles"], "Crippen logP (RDKit `Crippen.MolLogP`)", ("source", "moses_scaffold")),
    "Descriptor": ("Descriptor", ["sequence"], "the protein descriptor AF1 (`peptides`: the first Atchley factor, averaged over residues)",
                   ("rows", 200)),
    "pI": ("pI", ["sequence"], "the isoelectric point (`peptides`)", ("rows", 200)),
    "BindingAffinity": ("BindingAffinity", ["sequence", "smiles"], "DAVIS binding affinity pKd", ("groups", "protein_id", 40)),
}
SEED = 20240611
# Tags trained on one source's rows of their task (scripts/train-tags.sh): the ablation probe uses
# the same rows, and the card says so.
TRAIN_SOURCE = {"QED": "moses"}


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


def concordance_index(pred, targ):
    num = den = 0.0
    for i in range(len(targ)):
        for j in range(i + 1, len(targ)):
            if targ[i] == targ[j]:
                continue
            den += 1
            d = (pred[i] - pred[j]) * (targ[i] - targ[j])
            num += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
    return num / den if den else float("nan")


def read_split(task_dir, split):
    """A split with its inputs inline (DAVIS ids joined to ligands/proteins), in file order."""
    rows = list(csv.DictReader(open(os.path.join(task_dir, f"{split}.csv"))))
    if rows and "ligand_id" in rows[0]:
        lig = {r["ligand_id"]: r["smiles"] for r in csv.DictReader(open(os.path.join(task_dir, "ligands.csv")))}
        pro = {r["protein_id"]: r["sequence"] for r in csv.DictReader(open(os.path.join(task_dir, "proteins.csv")))}
        for r in rows:
            r["smiles"], r["sequence"] = lig[r["ligand_id"]], pro[r["protein_id"]]
    return rows


def subset(rows, how, n=None, seed=SEED):
    """Indices of the rows to evaluate; `n` overrides the size (for probe training sets)."""
    rng = random.Random(seed)
    if how is None:
        return list(range(len(rows)))
    if how[0] == "source":
        return [i for i, r in enumerate(rows) if r.get("source") == how[1]] or list(range(len(rows)))
    if how[0] == "rows":
        k = min(n or how[1], len(rows))
        return sorted(rng.sample(range(len(rows)), k))
    if how[0] == "groups":
        keys = sorted({r[how[1]] for r in rows})
        rng.shuffle(keys)
        if n is None:
            chosen = set(keys[:how[2]])
            return [i for i, r in enumerate(rows) if r[how[1]] in chosen]
        out = []
        for k in keys:  # whole groups until n rows
            out += [i for i, r in enumerate(rows) if r[how[1]] == k]
            if len(out) >= n:
                break
        return sorted(out[:n])
    raise ValueError(how)


def write_rows(path, rows, idx, cols):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols + ["target"])
        for i in idx:
            w.writerow([rows[i][c] for c in cols] + [rows[i]["target"]])


def fmt(v):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def fmt_pair(a, b):
    """Two figures with enough decimals (3 to 6) that they read differently when they differ."""
    for d in range(3, 7):
        x, y = f"{a:.{d}f}", f"{b:.{d}f}"
        if x != y:
            break
    return x, y


def row_line(label, m, ci=False):
    cells = [label, str(m.get("n", "—"))] + [fmt(m.get(k)) for k in ("mse", "mae", "pearson", "spearman", "r2")]
    if ci:
        cells.append(fmt(m.get("ci")))
    return "| " + " | ".join(cells) + " |"


def wall_time(name, prov):
    if "wall_time_s" in prov:
        return f"{prov['wall_time_s']:.0f} s"
    try:  # tags trained before the trainer recorded it: the training log's last line
        for line in open(os.path.join(ROOT, "logs", f"{name}.log")):
            if line.startswith("wrote ") and line.rstrip().endswith("s)"):
                return line.rsplit(", ", 1)[1].rstrip(")\n").replace("s", " s")
    except OSError:
        pass
    return "not recorded"


def card(name, ablation, full, limit=None):
    task, cols, what, how = TASKS[name]
    how = None if full else how
    tag_path = os.path.join(ROOT, "tags", f"{name}.safetensors")
    if not os.path.exists(tag_path):
        print(f"{name}: no trained tag at {tag_path}; skipped", file=sys.stderr)
        return
    binary = os.environ.get("TAGLLM_BIN")  # a binary to use as it is (see scripts/train-tags.sh)
    if not binary:
        binary = os.path.join(ROOT, "target", "release", "tagllm")
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "tagllm"], cwd=ROOT, check=True)
    task_dir = os.path.join(ROOT, "data", "tasks", task)
    test = read_split(task_dir, "test")
    idx = subset(test, how)[:limit]
    ci = name == "BindingAffinity"
    with tempfile.TemporaryDirectory() as tmp:
        test_csv = os.path.join(tmp, "test.csv")
        write_rows(test_csv, test, idx, cols)
        preds = os.path.join(tmp, "preds.csv")
        cmd = [binary, "eval", "--tag", name, "--data", test_csv, "--input-col", cols[-1], "--target-col", "target",
               "--predictions", preds, "--batch", "16"]
        if len(cols) > 1:
            cmd += ["--protein-col", cols[0]]
        t0 = time.time()
        report = json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
        eval_s = time.time() - t0
        by_line = {}
        for r in csv.DictReader(open(preds)):
            if r["prediction"]:
                by_line[int(r["line"])] = float(r["prediction"])
        probe = None
        probe_path = os.path.join(ROOT, "tags", f"{name}.probe.json")
        meta = json.loads(subprocess.run([binary, "tags", "show", name], cwd=ROOT, check=True,
                                         capture_output=True, text=True).stdout)
        if ablation:
            train_rows, valid_rows = read_split(task_dir, "train"), read_split(task_dir, "valid")
            if name in TRAIN_SOURCE:
                train_rows, valid_rows = ([r for r in rows if r["source"] == TRAIN_SOURCE[name]] for rows in (train_rows, valid_rows))
            ptrain, pvalid = os.path.join(tmp, "ptrain.csv"), os.path.join(tmp, "pvalid.csv")
            # Grouped tasks draw whole proteins (each protein's pass is shared), others plain rows.
            probe_how = TASKS[name][3] if TASKS[name][3][0] == "groups" else ("rows", 0)
            # Proteins alone are long (~300 residues, one token each): a smaller probe set.
            n_train, n_valid = (400, 100) if cols == ["sequence"] else (1000, 200)
            write_rows(ptrain, train_rows, subset(train_rows, probe_how, n=n_train, seed=SEED + 1), cols)
            write_rows(pvalid, valid_rows, subset(valid_rows, probe_how, n=n_valid, seed=SEED + 2), cols)
            cmd = [binary, "train", "probe", "--template", meta["template"], "--train", ptrain, "--valid", pvalid,
                   "--test", test_csv, "--input-cols", ",".join(cols), "--readout", "means"]
            t0 = time.time()
            probe = json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
            probe["wall_s"] = time.time() - t0
            json.dump(probe, open(probe_path, "w"), indent=1)
        elif os.path.exists(probe_path):
            probe = json.load(open(probe_path))
    # eval lines are 1-based file lines: subset row k is line k + 2
    pred = {idx[k]: v for k, v in ((line - 2, v) for line, v in by_line.items())}
    rows_eval = sorted(pred)
    targ = [float(test[i]["target"]) for i in rows_eval]
    ours = metrics([pred[i] for i in rows_eval], targ)
    if ci:
        ours["ci"] = concordance_index([pred[i] for i in rows_eval], targ)
    # Baselines on the very same rows.
    base_rows = {}
    bpath = os.path.join(ROOT, "data", "baselines", f"{task}.csv")
    base_json = json.load(open(os.path.join(ROOT, "data", "baselines.json"))).get(task, {})
    if os.path.exists(bpath):
        brows = list(csv.DictReader(open(bpath)))
        for bname in [c for c in brows[0] if c != "row"]:
            p = [float(brows[i][bname]) for i in rows_eval]
            base_rows[bname] = metrics(p, targ)
            if ci:
                base_rows[bname]["ci"] = concordance_index(p, targ)
    else:  # older baseline runs: whole-split (or per-source) metrics
        for bname, b in base_json.items():
            if isinstance(b, dict) and "mse" in b and not b.get("published"):
                base_rows[bname] = dict(b.get("per_source", {}).get(how[1], b)) if how and how[0] == "source" else b
    prov = meta.get("provenance", {})
    opts = prov.get("options", {})
    readout = meta.get("readout", "last")
    if how is None:
        subset_text = "the whole test split"
    elif how[0] == "source":
        subset_text = f"the `{how[1]}` part of the test split"
    elif how[0] == "rows":
        subset_text = f"{len(idx)} test rows drawn with seed {SEED} (`scripts/cards.py`)"
    else:
        subset_text = f"every test pair of {how[2]} proteins drawn with seed {SEED} ({len(idx)} pairs)"
    hdr = "| model | n | MSE | MAE | Pearson | Spearman | R² |" + (" CI |" if ci else "")
    sep = "| --- " * (8 if ci else 7) + "|"
    lines = [f"# `<{name}>` — model card", "",
             f"Predicts {what}. Template: `{meta['template']!r}`. Base model: `{meta['base_model']['name']}` "
             f"(GGUF sha256 `{meta['base_model']['gguf_sha256'][:16]}…`), p = {meta['p']}; domain tags: "
             + ", ".join(f"`<{r['name']}>`" for r in meta["requires"]) + ".", "",
             "Read-out: " + ("the final-norm hidden state at the tag's last position, followed by the mean final-norm state "
                             "over each input's tokens (`--readout means`), into a linear head." if readout != "last" else
                             "the final-norm hidden state at the tag's last position (the paper's read-out), into a linear head."), "",
             "## Training", "",
             (f"- data: the `{TRAIN_SOURCE[name]}` rows of `data/tasks/{task}/train.csv` ({prov.get('train_examples', '?')} examples) and of "
              f"`valid.csv` for validation (its first rows: `--max-valid` in the command); see `data/README.md` for sources and splits"
              if name in TRAIN_SOURCE else
              f"- data: `data/tasks/{task}/train.csv` ({prov.get('train_examples', '?')} valid examples), validation "
              f"`valid.csv` (its first rows: `--max-valid` in the command); see `data/README.md` for sources and splits"),
             f"- head initialised by ridge regression on {opts.get('init_examples', 0)} training examples (the initial tag's read-out), "
             f"then {opts.get('steps', 0)} AdamW steps × {opts.get('batch', 0)} examples (lr {opts.get('lr')}, 3% warm-up, cosine decay) on tag and head",
             f"- best validation step {prov.get('best_step', '?')} (step 0 = the ridge start); validation score (R²) by step: "
             f"`{json.dumps(prov.get('valid_history', []))}`",
             f"- wall time (feature pass, steps and validation, on 2 shared CPU cores): {wall_time(name, prov)}",
             f"- command: `scripts/train-tags.sh {name}`", "",
             f"## Test metrics ({subset_text}; n = {ours['n']}, {len(idx) - ours['n']} rows not predicted)", "",
             "All rows below are on exactly these test rows.", "",
             hdr, sep, row_line(f"**`<{name}>` (this tag)**", ours, ci)]
    for bname, m in base_rows.items():
        lines.append(row_line(bname, m, ci))
    if probe:
        t = probe["test"]
        lines.append(row_line(f"same prompt without tags + ridge head on the same read-out (ablation, {probe['train_examples']} train)", t, ci))
    else:
        lines.append("| same prompt without tags (ablation) | — | not measured yet (`--ablation`) |" + " |" * (6 if ci else 5))
    lines.append("")
    published = {k: v for k, v in base_json.items() if isinstance(v, dict) and v.get("published")}
    if published:
        lines += ["Published figures on the whole DAVIS test split (not run here, not the same rows): " +
                  "; ".join(f"{k}: MSE {fmt(v.get('mse'))}, CI {fmt(v.get('ci'))}" for k, v in published.items()) + ".", ""]
    experts = {k: m for k, m in base_rows.items() if k != "train_mean"}
    best_name, best = max(experts.items(), key=lambda kv: -kv[1]["mse"]) if experts else (None, None)
    mean_m = base_rows.get("train_mean")
    verdict = []
    if mean_m:
        verdict.append(("Beats" if ours["mse"] < mean_m["mse"] else "**Does not beat**") +
                       f" the training-mean predictor (MSE {fmt(ours['mse'])} vs {fmt(mean_m['mse'])}).")
    if probe:
        verdict.append(("Adds to" if ours["mse"] < probe["test"]["mse"] else "**Adds nothing over**") +
                       " the same prompt without tags (MSE %s vs %s)." % fmt_pair(ours["mse"], probe["test"]["mse"]))
    if best:
        verdict.append(("Beats" if ours["mse"] < best["mse"] else "**Loses to**") +
                       f" the best expert baseline here, {best_name} (MSE {fmt(ours['mse'])} vs {fmt(best['mse'])}, "
                       f"R² {fmt(ours['r2'])} vs {fmt(best['r2'])}).")
    lines += ["## Verdict", ""] + [f"- {v}" for v in verdict] + ["",
              f"Regenerate: `python3 scripts/cards.py {name} --ablation` (the evaluation took {eval_s:.0f} s"
              + (f", the ablation {probe['wall_s']:.0f} s" if probe and "wall_s" in probe else "") + " here).", ""]
    with open(os.path.join(ROOT, "tags", f"{name}.md"), "w") as f:
        f.write("\n".join(lines))
    print(f"wrote tags/{name}.md: R² {fmt(ours['r2'])} MSE {fmt(ours['mse'])}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--ablation", action="store_true", help="also run the no-tag ablation (slow)")
    ap.add_argument("--full", action="store_true", help="evaluate whole test splits (slow)")
    ap.add_argument("--limit", type=int, help="only the first N rows of the evaluation set (to check this script)")
    a = ap.parse_args()
    for n in a.names or TASKS:
        if n in TASKS:
            card(n, a.ablation, a.full, a.limit)
        else:
            print(f"{n}: a domain tag or unknown; its card is written by hand from its provenance", file=sys.stderr)
