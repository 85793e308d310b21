#!/usr/bin/env python3
"""Reference baselines on the task splits of data/tasks/, written to data/baselines.json.

Usage (after scripts/data/prepare.py):

    .venv/bin/python scripts/data/baselines.py                    # all tasks present
    .venv/bin/python scripts/data/baselines.py --only QED --only pI   # some tasks (merged
                                                                     # into the existing json)

Baselines (all metrics are on the test split; hyper-parameters picked on valid only):
  train_mean           predicts the mean of the training targets (for BBBP: the positive rate)
  morgan_bits_ridge    ridge on Morgan fingerprint bits (radius 2, 2048 bits), alpha on valid
  morgan_count_ridge   ridge on Morgan count fingerprint (radius 2, 2048), alpha on valid
  morgan_count_rf      random forest on Morgan counts (300 trees, max_features=1/3, n_jobs=1)
  (BBBP: morgan_count_logreg / morgan_count_rf classifiers; probabilities are scored)
  aac_ridge            protein tasks: ridge on amino-acid composition (20 fractions)
  aac_dpc_ridge        protein tasks: ridge on amino-acid (20) + dipeptide (400) composition
  aac_dpc_rf, aac_rf   protein tasks: random forest on the 420 / the 20 features
  aac_gbm              protein tasks: gradient boosting (sklearn HistGradientBoosting) on the 20
  BindingAffinity: the same on [ligand Morgan counts | protein AAC+DPC], and the published
  DeepDTA / GraphDTA figures on the same DAVIS test fold (marked "published": true).

Everything is seeded and single-threaded (n_jobs=1).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core: the machine is shared

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore", message=".*ill-conditioned.*")

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "data" / "tasks"
PRED_DIR = ROOT / "data" / "baselines"
OUT = ROOT / "data" / "baselines.json"
SEED = 0
ALPHAS = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]
RF_TREES = 300
RF_MAX_FEATURES = 1.0 / 3.0  # p/3, R randomForest's default for regression
AA = "ACDEFGHIKLMNPQRSTVWY"

SMILES_REG_TASKS = ["QED", "LogP", "Solubility"]
PROTEIN_TASKS = ["Descriptor", "pI"]
ALL_TASKS = ["QED", "LogP", "Descriptor", "pI", "BindingAffinity", "BBBP", "Solubility"]

PUBLISHED_DAVIS = {
    "deepdta_published": {
        "mse": 0.261, "ci": 0.878, "published": True,
        "reference": "Öztürk, Özgür, Ozkirimli. DeepDTA. Bioinformatics 34:i821 (2018); "
                     "DAVIS setting-1 test fold",
    },
    "graphdta_gin_published": {
        "mse": 0.229, "ci": 0.893, "published": True,
        "reference": "Nguyen et al. GraphDTA (GIN). Bioinformatics 37:1140 (2021); "
                     "DAVIS setting-1 test fold",
    },
}


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------
# metrics


def concordance_index(y: np.ndarray, p: np.ndarray, chunk: int = 1024) -> float:
    """Harrell's C over all pairs with different true values (ties in p count 0.5)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    num = 0.0
    den = 0.0
    for s in range(0, len(y), chunk):
        yi, pi = y[s: s + chunk, None], p[s: s + chunk, None]
        gt = yi > y[None, :]  # pairs (i, j) with y_i > y_j
        dp = pi - p[None, :]
        num += float(np.sum(gt & (dp > 0)) + 0.5 * np.sum(gt & (dp == 0)))
        den += float(np.sum(gt))
    return num / den if den else float("nan")


def reg_metrics(y, p) -> dict:
    from scipy.stats import pearsonr, spearmanr

    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    err = p - y
    mse = float(np.mean(err ** 2))
    const = np.allclose(p, p[0])
    m = {
        "n": int(len(y)),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(err))),
        "pearson": None if const else float(pearsonr(y, p)[0]),
        "spearman": None if const else float(spearmanr(y, p)[0]),
        "r2": float(1.0 - mse / np.var(y)) if np.var(y) > 0 else None,
    }
    return m


def cls_metrics(y, prob) -> dict:
    from sklearn.metrics import accuracy_score, roc_auc_score

    m = reg_metrics(y, prob)
    m["roc_auc"] = float(roc_auc_score(y, prob)) if len(set(np.asarray(y).tolist())) > 1 else None
    m["accuracy"] = float(accuracy_score(y, (np.asarray(prob) >= 0.5).astype(int)))
    return m


def rounded(d):
    if isinstance(d, dict):
        return {k: rounded(v) for k, v in d.items()}
    if isinstance(d, list):
        return [rounded(v) for v in d]
    if isinstance(d, float):
        return round(d, 6)
    return d


# ------------------------------------------------------------------------------------------
# features

_morgan_cache: dict = {}


def morgan(smiles: list[str], counts: bool) -> np.ndarray:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    X = np.zeros((len(smiles), 2048), dtype=np.float32)
    for i, s in enumerate(smiles):
        key = (s, counts)
        v = _morgan_cache.get(key)
        if v is None:
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                raise ValueError(f"unparsable SMILES {s!r}")
            v = (gen.GetCountFingerprintAsNumPy(mol) if counts
                 else gen.GetFingerprintAsNumPy(mol)).astype(np.float32)
            _morgan_cache[key] = v
        X[i] = v
    return X


DIPEPTIDES = [a + b for a in AA for b in AA]
_DP_INDEX = {d: i for i, d in enumerate(DIPEPTIDES)}
_AA_INDEX = {a: i for i, a in enumerate(AA)}


def aac_dpc(seq: str) -> np.ndarray:
    v = np.zeros(420, dtype=np.float32)
    n = 0
    for ch in seq:
        j = _AA_INDEX.get(ch)
        if j is not None:
            v[j] += 1
            n += 1
    if n:
        v[:20] /= n
    m = 0
    for k in range(len(seq) - 1):
        j = _DP_INDEX.get(seq[k: k + 2])
        if j is not None:
            v[20 + j] += 1
            m += 1
    if m:
        v[20:] /= m
    return v


# ------------------------------------------------------------------------------------------
# models


def fit_ridge(Xtr, ytr, Xva, yva):
    from sklearn.linear_model import Ridge

    best = None
    for a in ALPHAS:
        m = Ridge(alpha=a).fit(Xtr, ytr)
        mse = float(np.mean((m.predict(Xva) - yva) ** 2))
        if best is None or mse < best[0]:
            best = (mse, a, m)
    return best[2], {"alpha": best[1], "valid_mse": best[0], "alpha_grid": ALPHAS}


def fit_rf(Xtr, ytr, Xva, yva):
    from sklearn.ensemble import RandomForestRegressor

    m = RandomForestRegressor(n_estimators=RF_TREES, max_features=RF_MAX_FEATURES, n_jobs=1,
                              random_state=SEED).fit(Xtr, ytr)
    return m, {"n_estimators": RF_TREES, "max_features": "1/3", "random_state": SEED,
               "valid_mse": float(np.mean((m.predict(Xva) - yva) ** 2))}


def fit_gbm(Xtr, ytr, Xva, yva):
    from sklearn.ensemble import HistGradientBoostingRegressor

    m = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, early_stopping=False,
                                      random_state=SEED).fit(Xtr, ytr)
    return m, {"model": "HistGradientBoostingRegressor", "max_iter": 500,
               "learning_rate": 0.05, "random_state": SEED,
               "valid_mse": float(np.mean((m.predict(Xva) - yva) ** 2))}


# Per-row test predictions of the task being run, by baseline name: written next to the metrics
# (data/baselines/TASK.csv) so a model card evaluated on part of a test split can compare with
# every baseline on exactly those rows.
PREDICTIONS: dict = {}


def run_regression(name, fitter, Xtr, ytr, Xva, yva, Xte, yte, extra=None, sources=None,
                   ci=False) -> dict:
    t = time.time()
    model, params = fitter(Xtr, ytr, Xva, yva)
    pred = model.predict(Xte)
    PREDICTIONS[name] = pred
    res = reg_metrics(yte, pred)
    if ci:
        res["ci"] = concordance_index(yte, pred)
    if sources is not None:
        res["per_source"] = per_source(yte, pred, sources)
    res["params"] = params
    if extra:
        res.update(extra)
    res["wall_s"] = round(time.time() - t, 1)
    log(f"    {name}: r2={res['r2']:.4f} mse={res['mse']:.4f} pearson={res['pearson']:.4f} "
        f"({res['wall_s']}s)")
    return res


def per_source(y, p, sources) -> dict:
    out = {}
    sources = np.asarray(sources)
    for s in sorted(set(sources.tolist())):
        idx = sources == s
        out[s] = reg_metrics(np.asarray(y)[idx], np.asarray(p)[idx])
    return out


def mean_baseline(ytr, yte, sources=None, ci=False, name="train_mean") -> dict:
    pred = np.full(len(yte), float(np.mean(ytr)))
    PREDICTIONS[name] = pred
    res = reg_metrics(yte, pred)
    if ci:
        res["ci"] = concordance_index(yte, pred)
    if sources is not None:
        res["per_source"] = per_source(yte, pred, sources)
    res["params"] = {"train_mean": float(np.mean(ytr))}
    return res


# ------------------------------------------------------------------------------------------
# tasks


def load_split(task):
    return {sp: read_csv(TASKS / task / f"{sp}.csv") for sp in ("train", "valid", "test")}


# Tasks whose tag trains on one source's rows only (scripts/train-tags.sh): their baselines are
# fitted a second time on exactly those rows, named with this suffix, so that the card compares
# like with like.
TRAIN_SOURCE = {"QED": "moses"}


def task_smiles_regression(task) -> dict:
    d = load_split(task)
    sources = [r["source"] for r in d["test"]] if "source" in d["test"][0] else None
    out = smiles_baselines(d, sources, "")
    if task in TRAIN_SOURCE:
        src = TRAIN_SOURCE[task]
        only = {sp: [r for r in rows if sp == "test" or r["source"] == src] for sp, rows in d.items()}
        log(f"  {task}: the same baselines fitted on the `{src}` rows only")
        out.update(smiles_baselines(only, sources, f"_{src}_rows"))
    return out


def smiles_baselines(d, sources, suffix) -> dict:
    y = {sp: np.array([float(r["target"]) for r in rows]) for sp, rows in d.items()}
    smi = {sp: [r["smiles"] for r in rows] for sp, rows in d.items()}
    out = {f"train_mean{suffix}": mean_baseline(y["train"], y["test"], sources, name=f"train_mean{suffix}")}
    for counts, label in ((False, "bits"), (True, "count")):
        X = {sp: morgan(smi[sp], counts) for sp in smi}
        name = f"morgan_{label}_ridge{suffix}"
        out[name] = run_regression(name, fit_ridge, X["train"], y["train"], X["valid"], y["valid"],
                                   X["test"], y["test"], sources=sources)
        if counts:
            name = f"morgan_count_rf{suffix}"
            out[name] = run_regression(name, fit_rf, X["train"], y["train"], X["valid"], y["valid"],
                                       X["test"], y["test"], sources=sources)
    return out


def task_protein(task) -> dict:
    d = load_split(task)
    y = {sp: np.array([float(r["target"]) for r in rows]) for sp, rows in d.items()}
    X = {sp: np.stack([aac_dpc(r["sequence"]) for r in rows]) for sp, rows in d.items()}
    out = {"train_mean": mean_baseline(y["train"], y["test"])}
    out["aac_ridge"] = run_regression(
        "aac_ridge", fit_ridge, X["train"][:, :20], y["train"], X["valid"][:, :20], y["valid"],
        X["test"][:, :20], y["test"])
    out["aac_dpc_ridge"] = run_regression(
        "aac_dpc_ridge", fit_ridge, X["train"], y["train"], X["valid"], y["valid"],
        X["test"], y["test"])
    out["aac_dpc_rf"] = run_regression(
        "aac_dpc_rf", fit_rf, X["train"], y["train"], X["valid"], y["valid"],
        X["test"], y["test"])
    out["aac_rf"] = run_regression(
        "aac_rf", fit_rf, X["train"][:, :20], y["train"], X["valid"][:, :20], y["valid"],
        X["test"][:, :20], y["test"])
    out["aac_gbm"] = run_regression(
        "aac_gbm", fit_gbm, X["train"][:, :20], y["train"], X["valid"][:, :20], y["valid"],
        X["test"][:, :20], y["test"])
    return out


def task_binding() -> dict:
    base = TASKS / "BindingAffinity"
    prots = {r["protein_id"]: r["sequence"] for r in read_csv(base / "proteins.csv")}
    ligs = {r["ligand_id"]: r["smiles"] for r in read_csv(base / "ligands.csv")}
    lig_ids = sorted(ligs)
    lig_fp = dict(zip(lig_ids, morgan([ligs[i] for i in lig_ids], counts=True)))
    prot_f = {k: aac_dpc(v) for k, v in prots.items()}
    d = load_split("BindingAffinity")
    y = {sp: np.array([float(r["target"]) for r in rows]) for sp, rows in d.items()}
    X = {sp: np.stack([np.concatenate([lig_fp[r["ligand_id"]], prot_f[r["protein_id"]]])
                       for r in rows]) for sp, rows in d.items()}
    out = {"train_mean": mean_baseline(y["train"], y["test"], ci=True)}
    out["morgan_count+aac_dpc_ridge"] = run_regression(
        "morgan_count+aac_dpc_ridge", fit_ridge, X["train"], y["train"], X["valid"], y["valid"],
        X["test"], y["test"], ci=True)
    out["morgan_count+aac_dpc_rf"] = run_regression(
        "morgan_count+aac_dpc_rf", fit_rf, X["train"], y["train"], X["valid"], y["valid"],
        X["test"], y["test"], ci=True)
    out.update(PUBLISHED_DAVIS)
    return out


def task_bbbp() -> dict:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    d = load_split("BBBP")
    y = {sp: np.array([int(r["target"]) for r in rows]) for sp, rows in d.items()}
    X = {sp: morgan([r["smiles"] for r in rows], counts=True) for sp, rows in d.items()}
    out = {}
    rate = float(np.mean(y["train"]))
    out["train_mean"] = cls_metrics(y["test"], np.full(len(y["test"]), rate))
    out["train_mean"]["params"] = {"train_positive_rate": rate}

    t = time.time()
    best = None
    for C in [0.001, 0.01, 0.1, 1.0, 10.0]:
        m = LogisticRegression(C=C, max_iter=5000).fit(X["train"], y["train"])
        ll = float(-np.mean(np.log(np.clip(
            m.predict_proba(X["valid"])[np.arange(len(y["valid"])), y["valid"]], 1e-12, 1))))
        if best is None or ll < best[0]:
            best = (ll, C, m)
    res = cls_metrics(y["test"], best[2].predict_proba(X["test"])[:, 1])
    res["params"] = {"C": best[1], "valid_logloss": best[0], "penalty": "l2"}
    res["wall_s"] = round(time.time() - t, 1)
    out["morgan_count_logreg"] = res
    log(f"    morgan_count_logreg: auc={res['roc_auc']:.4f} acc={res['accuracy']:.4f}")

    t = time.time()
    m = RandomForestClassifier(n_estimators=RF_TREES, max_features="sqrt", n_jobs=1,
                               random_state=SEED).fit(X["train"], y["train"])
    res = cls_metrics(y["test"], m.predict_proba(X["test"])[:, 1])
    res["params"] = {"n_estimators": RF_TREES, "max_features": "sqrt", "random_state": SEED}
    res["wall_s"] = round(time.time() - t, 1)
    out["morgan_count_rf"] = res
    log(f"    morgan_count_rf: auc={res['roc_auc']:.4f} acc={res['accuracy']:.4f}")
    return out


def run_task(task) -> dict:
    if task in SMILES_REG_TASKS:
        return task_smiles_regression(task)
    if task in PROTEIN_TASKS:
        return task_protein(task)
    if task == "BindingAffinity":
        return task_binding()
    if task == "BBBP":
        return task_bbbp()
    raise ValueError(task)


def write_predictions(task) -> None:
    """data/baselines/TASK.csv: one row per test row (same order), one column per baseline."""
    if not PREDICTIONS:
        return
    PRED_DIR.mkdir(parents=True, exist_ok=True)
    names = list(PREDICTIONS)
    rows = zip(*(PREDICTIONS[n] for n in names))
    with open(PRED_DIR / f"{task}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row"] + names)
        for i, r in enumerate(rows):
            w.writerow([i] + [f"{float(v):.5g}" for v in r])


def markdown_table(result: dict) -> str:
    """Test metrics per task and baseline (+ per-source R² for QED/LogP) as Markdown."""
    def f(v, nd=3):
        return "–" if v is None else f"{v:.{nd}f}"

    lines = ["| task | baseline | n | R² | MSE | Pearson | Spearman | extra |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for task in ALL_TASKS:
        for name, m in result.get(task, {}).items():
            extra = []
            if "ci" in m:
                extra.append(f"CI {f(m['ci'])}")
            if m.get("roc_auc") is not None:
                extra.append(f"AUC {f(m['roc_auc'])}, acc {f(m['accuracy'])}")
            if "per_source" in m:
                extra.append("R² " + ", ".join(f"{k} {f(v['r2'])}"
                                                for k, v in m["per_source"].items()))
            if m.get("published"):
                extra.append("published")
            lines.append(f"| {task} | {name} | {m.get('n', '–')} | {f(m.get('r2'))} | "
                         f"{f(m.get('mse'), 4)} | {f(m.get('pearson'))} | "
                         f"{f(m.get('spearman'))} | {'; '.join(extra)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=ALL_TASKS)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--table", action="store_true",
                    help="only print the Markdown table of an existing json")
    args = ap.parse_args()
    out_path = Path(args.out)
    if args.table:
        with open(out_path) as f:
            print(markdown_table(json.load(f)))
        return
    tasks = args.only or [t for t in ALL_TASKS if (TASKS / t / "test.csv").exists()]
    result = {}
    if out_path.exists():
        with open(out_path) as f:
            result = json.load(f)
    t_all = time.time()
    import rdkit
    import sklearn

    meta = result.get("_meta", {})
    runs = meta.get("task_runs", {})
    cmd = "python scripts/data/baselines.py" + "".join(f" --only {t}" for t in (args.only or []))
    for task in tasks:
        log(f"{task}")
        t = time.time()
        PREDICTIONS.clear()
        result[task] = rounded(run_task(task))
        write_predictions(task)
        runs[task] = {"wall_s": round(time.time() - t, 1), "command": cmd,
                      "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        log(f"{task}: {runs[task]['wall_s']}s")
    meta.update({
        "command": "python scripts/data/baselines.py  (all tasks; --only TASK redoes one)",
        "last_command": cmd,
        "last_run_wall_s": round(time.time() - t_all, 1),
        "task_runs": runs,
        "notes": "metrics on each task's test split; hyper-parameters picked on valid only; "
                 "ci = concordance index; per_source = QED/LogP test broken down by source; "
                 "entries with published=true are copied from papers, not run here",
        "versions": {"python": platform.python_version(), "rdkit": rdkit.__version__,
                     "sklearn": sklearn.__version__, "numpy": np.__version__},
        "cpu_threads": 1,
    })
    if not args.only:
        meta["full_run_wall_s"] = meta["last_run_wall_s"]
    ordered = {"_meta": meta}
    for t in ALL_TASKS:
        if t in result:
            ordered[t] = result[t]
    tmp = str(out_path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ordered, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, out_path)
    log(f"wrote {out_path}")
    print(markdown_table(ordered))


if __name__ == "__main__":
    main()
