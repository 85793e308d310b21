//! The experiment behind the `means` read-out (ARCHITECTURE.md): final-norm hidden states of the
//! tag-free QED prompt at its last position and averaged over the SMILES tokens, as CSV rows
//! `target, last[576], mean[576]` for the first N rows of IN.csv whose `source` is SOURCE.
//!
//! ```sh
//! cargo run --release --example pool_features -- data/tasks/LogP/train.csv moses 1200 /tmp/train.csv
//! cargo run --release --example pool_features -- data/tasks/LogP/test.csv moses_scaffold 400 /tmp/test.csv
//! .venv/bin/python - <<'PY'
//! import numpy as np; from sklearn.linear_model import RidgeCV; from sklearn.metrics import r2_score
//! tr, te = np.loadtxt('/tmp/train.csv', delimiter=','), np.loadtxt('/tmp/test.csv', delimiter=',')
//! for name, sl in [('last', slice(1, 577)), ('mean', slice(577, 1153)), ('both', slice(1, 1153))]:
//!     m = RidgeCV(alphas=np.logspace(-3, 4, 15)).fit(tr[:, sl], tr[:, 0])
//!     print(name, r2_score(te[:, 0], m.predict(te[:, sl])))
//! PY
//! ```
use candle_core::IndexOp;
use tagllm::model::{KvCache, Mode, Model, Segment};

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let (input, source, n, out) = (&a[1], &a[2], a[3].parse::<usize>()?, &a[4]);
    let model = Model::load(std::path::Path::new(tagllm::model::DEFAULT_MODEL_PATH))?;
    let tok = &model.tokenizer;
    let pre = tok.encode("# # Input: The SMILES of the molecule is")?;
    let post = tok.encode(". \n# # Output: the quantitative estimate of druglikeness score is")?;
    let text = std::fs::read_to_string(input)?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let r: Vec<&str> = line.split(',').collect();
        if r[2] == source.as_str() { rows.push((r[0].to_string(), r[1].parse::<f64>()?)); }
        if rows.len() == n { break; }
    }
    let mut w = std::fs::File::create(out)?;
    use std::io::Write;
    for chunk in rows.chunks(8) {
        let mut segs = Vec::new();
        let mut spans = Vec::new();
        for (s, _) in chunk {
            let ids = tok.encode(&format!(" {s}"))?;
            spans.push((pre.len(), pre.len() + ids.len()));
            segs.push(vec![Segment::Tokens(pre.clone()), Segment::Tokens(ids), Segment::Tokens(post.clone())]);
        }
        let (x, lens) = model.llama.embed_batch(&segs)?;
        let h = model.llama.forward(&x, &mut KvCache::new(), Mode::Infer)?;
        for (i, ((_, y), (s, e))) in chunk.iter().zip(&spans).enumerate() {
            let last: Vec<f32> = h.i((i, lens[i] - 1))?.to_vec1()?;
            let mean: Vec<f32> = h.i((i, *s..*e))?.mean(0)?.to_vec1()?;
            let f: Vec<String> = last.iter().chain(&mean).map(|v| format!("{v:.5}")).collect();
            writeln!(w, "{y},{}", f.join(","))?;
        }
    }
    Ok(())
}
