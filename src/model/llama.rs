//! The Llama forward pass over quantised GGUF weights, taking *embeddings* as input so that
//! tag vectors can be spliced in where token embeddings would be.
//!
//! ```text
//! segments ──embed()──▶ [b, s, d] ──30 × (RMSNorm → GQA attention → + → RMSNorm → SwiGLU → +)──▶
//!          final RMSNorm ──▶ hidden states [b, s, d] ──(tied) token_embd ᵀ──▶ logits
//! ```
//!
//! Two execution modes share one code path: [`Mode::Infer`] uses candle's fused kernels and the
//! quantised matmul; [`Mode::Train`] uses differentiable formulations so gradients reach the tag
//! vectors (the weights themselves are never trained).

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, IndexOp, Module, Tensor, D};

use super::gguf::{Config, GgufFile};
use super::int8::Int8Linear;
use super::Weights;
use crate::error::{Error, Result};

/// Which kernels to use. Training needs every op on the path to the tags to have a backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Infer,
    Train,
}

/// One piece of a model input: text tokens, or a block of continuous vectors (a tag).
#[derive(Debug, Clone)]
pub enum Segment {
    Tokens(Vec<u32>),
    /// `[p, d]` vectors placed where `p` token embeddings would be.
    Vectors(Tensor),
}

impl Segment {
    pub fn len(&self) -> usize {
        match self {
            Segment::Tokens(t) => t.len(),
            Segment::Vectors(v) => v.dims().first().copied().unwrap_or(0),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A weight matrix: candle's (f32 or quantised) or the integer kernels' ([`Weights::Int8`]).
enum Linear {
    Candle(QMatMul),
    Int8(Int8Linear),
    Compact(super::compact::CompactLinear),
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    Amx(super::amx::AmxLinear),
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Candle(QMatMul::Tensor(w)) if x.rank() > 2 => super::frozen::matmul_rows(x, w),
            Linear::Candle(w) => w.forward(x),
            Linear::Int8(w) => w.forward(x),
            Linear::Compact(w) => w.forward(x),
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Linear::Amx(w) => w.forward(x),
        }
    }

    /// The product in training: f32 weights go through [`frozen_linear`], so no gradient is
    /// computed for them. The integer and AMX products have no backward (gradients would
    /// silently stop there), so training refuses them.
    ///
    /// [`frozen_linear`]: super::frozen::frozen_linear
    fn forward_train(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Candle(QMatMul::Tensor(w)) => super::frozen::frozen_linear(x, w),
            Linear::Int8(_) => candle_core::bail!("training needs f32 weights, not int8"),
            Linear::Compact(_) => candle_core::bail!("training needs f32 weights, not compact"),
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Linear::Amx(_) => candle_core::bail!("training needs f32 weights, not amx"),
            Linear::Candle(_) => self.forward(x),
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    ffn_norm: Tensor,
    w_gate: Linear,
    w_up: Linear,
    w_down: Linear,
}

/// Keys and values of the positions seen so far, per layer, as blocks in position order, each
/// `[rows, n_kv_head, t, head_dim]`: `rows` is 1 for a block shared by every row of the batch
/// (a prefix run once) and the batch size otherwise. Inference appends a block per call and
/// reads the blocks where they are; training joins them into one.
///
/// Rows of a batch may be *ragged*: after [`Llama::forward_ragged`] each row has its own next
/// position and some cached keys are padding that no later query may attend to.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Vec<(Tensor, Tensor)>>,
    len: usize,
    batch: usize,
    /// Per row: the position the next input starts at (None: every row at `len`).
    next_pos: Option<Vec<usize>>,
    /// Per row: which cached keys are real (None: all of them).
    key_valid: Option<Vec<Vec<bool>>>,
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }
    /// Cached key slots (positions of the longest row, padding included).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Batch size held (1 for a shared prefix).
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// The same cache with every tensor detached from the autograd graph.
    pub fn detach(&self) -> Self {
        Self {
            layers: self.layers.iter().map(|blocks| blocks.iter().map(|(k, v)| (k.detach(), v.detach())).collect()).collect(),
            ..self.clone()
        }
    }
    fn start_of(&self, row: usize) -> usize {
        self.next_pos.as_ref().map_or(self.len, |p| p[row.min(p.len() - 1)])
    }
    fn valid(&self, row: usize, key: usize) -> bool {
        self.key_valid.as_ref().is_none_or(|v| v[row.min(v.len() - 1)][key])
    }
}

/// The transformer: weights plus rotary tables.
pub struct Llama {
    pub config: Config,
    /// Q8_0 token embedding, also the output projection (tied).
    embedding: Arc<QTensor>,
    lm_head: Linear,
    weights: Weights,
    layers: Vec<Layer>,
    norm: Tensor,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// cos and sin of every position's rotary angles, `[context, head_dim / 2]` (the GPU backend
/// uploads the same tables).
pub(crate) fn rope_tables(config: &Config, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = config.head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / config.rope_base.powf(2.0 * i as f32 / config.head_dim as f32))
        .collect();
    let n = config.context_length;
    let mut angles = Vec::with_capacity(n * half);
    for pos in 0..n {
        angles.extend(inv.iter().map(|f| pos as f32 * f));
    }
    let angles = Tensor::from_vec(angles, (n, half), device)?;
    Ok((angles.cos()?, angles.sin()?))
}

impl Llama {
    /// Builds the model from a checked GGUF file. With [`Weights::F32`], every matrix is expanded
    /// to f32 (exactly the quantised values), which training needs for its backward pass; with
    /// [`Weights::Int8`], Q4_1 and Q8_0 matrices (all of SmolLM2's) run the integer kernels and
    /// any other format is expanded to f32.
    pub fn from_gguf(file: &GgufFile, weights: Weights) -> Result<Self> {
        let device = Device::Cpu;
        let qtensor = |name: &str| -> Result<QTensor> {
            file.content
                .tensor(&mut std::io::Cursor::new(&file.bytes), name, &device)
                .map_err(|e| Error::model(format!("tensor `{name}`: {e}")))
        };
        let linear_of = |t: Arc<QTensor>| -> Result<Linear> {
            Ok(match weights {
                Weights::F32 => Linear::Candle(QMatMul::Tensor(t.dequantize(&device)?)),
                Weights::Quantized => Linear::Candle(QMatMul::from_arc(t)?),
                Weights::Int8 | Weights::Int16 => match Int8Linear::from_qtensor(&t) {
                    Ok(w) => Linear::Int8(w.with_wide_inputs(weights == Weights::Int16)),
                    Err(_) => Linear::Candle(QMatMul::Tensor(t.dequantize(&device)?)),
                },
                Weights::Compact => match super::compact::CompactLinear::new(t.clone()) {
                    Ok(w) => Linear::Compact(w),
                    Err(_) => Linear::Candle(QMatMul::Tensor(t.dequantize(&device)?)),
                },
                Weights::Amx => amx_linear(&t.dequantize(&device)?)?,
            })
        };
        let matmul = |name: &str| -> Result<Linear> { linear_of(Arc::new(qtensor(name)?)) };
        let vector = |name: &str| -> Result<Tensor> { Ok(qtensor(name)?.dequantize(&device)?) };
        let layer = |i: usize| -> Result<Layer> {
            let p = format!("blk.{i}");
            Ok(Layer {
                wq: matmul(&format!("{p}.attn_q.weight"))?,
                wk: matmul(&format!("{p}.attn_k.weight"))?,
                wv: matmul(&format!("{p}.attn_v.weight"))?,
                wo: matmul(&format!("{p}.attn_output.weight"))?,
                w_gate: matmul(&format!("{p}.ffn_gate.weight"))?,
                w_up: matmul(&format!("{p}.ffn_up.weight"))?,
                w_down: matmul(&format!("{p}.ffn_down.weight"))?,
                attn_norm: vector(&format!("{p}.attn_norm.weight"))?,
                ffn_norm: vector(&format!("{p}.ffn_norm.weight"))?,
            })
        };
        let config = file.config.clone();
        // Natively the layers are expanded on every core (most of loading is writing the f32
        // weights); in the page, one after another.
        #[cfg(not(target_arch = "wasm32"))]
        let layers = {
            use rayon::prelude::*;
            (0..config.n_layer).into_par_iter().map(layer).collect::<Result<Vec<_>>>()?
        };
        #[cfg(target_arch = "wasm32")]
        let layers = (0..config.n_layer).map(layer).collect::<Result<Vec<_>>>()?;
        let norm = vector("output_norm.weight")?;
        let embedding = Arc::new(qtensor("token_embd.weight")?);
        // The output head only serves generation; with AMX it runs candle's Q8_0 kernel on the
        // embedding table itself rather than holding a second, f32-sized copy.
        let lm_head = match weights {
            Weights::Amx => Linear::Candle(QMatMul::from_arc(embedding.clone())?),
            _ => linear_of(embedding.clone())?,
        };
        let (cos, sin) = rope_tables(&config, &device)?;
        Ok(Self { config, embedding, lm_head, layers, norm, cos, sin, device, weights })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How the weight matrices are held.
    pub fn weights(&self) -> Weights {
        self.weights
    }

    /// Token embeddings `[n, d]` of `ids` (rows of the Q8_0 table, dequantised on the fly).
    pub fn embed_tokens(&self, ids: &[u32]) -> Result<Tensor> {
        let vocab = self.config.vocab as u32;
        if let Some(bad) = ids.iter().find(|&&id| id >= vocab) {
            return Err(Error::Usage(format!("token id {bad} is outside the vocabulary ({vocab})")));
        }
        let ids = Tensor::new(ids, &self.device)?;
        Ok(self.embedding.embedding(&ids)?)
    }

    /// The whole vocabulary's embeddings `[vocab, d]` (used to initialise and inspect tags).
    pub fn embedding_table(&self) -> Result<Tensor> {
        Ok(self.embedding.dequantize(&self.device)?)
    }

    /// Embeds one input made of segments into `[len, d]`.
    pub fn embed(&self, segments: &[Segment]) -> Result<Tensor> {
        let d = self.config.hidden;
        let mut parts = Vec::with_capacity(segments.len());
        for seg in segments {
            match seg {
                Segment::Tokens(ids) if ids.is_empty() => {}
                Segment::Tokens(ids) => parts.push(self.embed_tokens(ids)?),
                Segment::Vectors(v) => {
                    let dims = v.dims();
                    if dims.len() != 2 || dims[1] != d {
                        return Err(Error::Usage(format!(
                            "tag vectors have shape {dims:?}, the model needs [p, {d}]"
                        )));
                    }
                    parts.push(v.to_dtype(DType::F32)?);
                }
            }
        }
        if parts.is_empty() {
            return Err(Error::Usage("empty model input".into()));
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Embeds several inputs and right-pads them with zeros to `[b, max_len, d]`.
    /// Right padding is safe under causal attention: no real position attends to padding.
    pub fn embed_batch(&self, inputs: &[Vec<Segment>]) -> Result<(Tensor, Vec<usize>)> {
        let embeds = inputs.iter().map(|segs| self.embed(segs)).collect::<Result<Vec<_>>>()?;
        let lens: Vec<usize> = embeds.iter().map(|e| e.dims()[0]).collect();
        let max = lens.iter().copied().max().unwrap_or(0);
        let padded = embeds
            .into_iter()
            .map(|e| {
                let n = e.dims()[0];
                if n == max {
                    Ok(e)
                } else {
                    let pad = Tensor::zeros((max - n, self.config.hidden), DType::F32, &self.device)?;
                    Tensor::cat(&[e, pad], 0)
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok((Tensor::stack(&padded, 0)?, lens))
    }

    /// Runs the transformer over `x` (`[b, s, d]`), continuing after the positions in `cache`
    /// and appending this call's keys and values to it. A cache of batch 1 (a shared prefix) is
    /// broadcast over a larger batch. Returns final-norm hidden states `[b, s, d]`.
    pub fn forward(&self, x: &Tensor, cache: &mut KvCache, mode: Mode) -> Result<Tensor> {
        self.forward_inner(x, None, cache, mode)
    }

    /// As [`Self::forward`] for right-padded rows: row `i` holds `lens[i]` real positions. Each
    /// row continues at its own position, and its padding is masked from every later query, so
    /// a row's result is the one it would get alone. Lets a batch of inputs of different lengths
    /// be followed by one more block (a tag) at each row's own end.
    pub fn forward_ragged(&self, x: &Tensor, lens: &[usize], cache: &mut KvCache, mode: Mode) -> Result<Tensor> {
        self.forward_inner(x, Some(lens), cache, mode)
    }

    fn forward_inner(&self, x: &Tensor, lens: Option<&[usize]>, cache: &mut KvCache, mode: Mode) -> Result<Tensor> {
        let x = &x.contiguous()?;
        let (b, s, d) = x.dims3()?;
        if d != self.config.hidden {
            return Err(Error::Usage(format!("input width {d}, model width {}", self.config.hidden)));
        }
        if !cache.is_empty() && cache.batch != b && cache.batch != 1 {
            return Err(Error::Usage(format!("cache batch {} does not fit input batch {b}", cache.batch)));
        }
        if let Some(lens) = lens {
            if lens.len() != b || lens.iter().any(|&l| l == 0 || l > s) {
                return Err(Error::Usage(format!("row lengths {lens:?} do not fit a [{b}, {s}] batch")));
            }
        }
        let t_old = cache.len;
        let starts: Vec<usize> = (0..b).map(|i| cache.start_of(i)).collect();
        let end = starts.iter().max().copied().unwrap_or(0) + s;
        if end > self.config.context_length {
            return Err(Error::Usage(format!(
                "input of {end} positions exceeds the model's context of {}",
                self.config.context_length
            )));
        }
        let aligned = lens.is_none() && cache.next_pos.is_none() && cache.key_valid.is_none();
        // Which keys each query may see: the valid cached ones, then its own row's positions up
        // to itself; a padding query sees only itself, so its softmax stays finite.
        let t = t_old + s;
        let mut visible = Vec::with_capacity(b * s * t);
        for i in 0..b {
            let len = lens.map_or(s, |l| l[i]);
            for q in 0..s {
                for j in 0..t {
                    let ok = if j < t_old { cache.valid(i, j) } else { j - t_old <= q && j - t_old < len };
                    visible.push(ok || (q >= len && j == t_old + q));
                }
            }
        }
        let rotary = match mode {
            Mode::Infer => Rotary::Positions(&starts),
            Mode::Train if aligned => Rotary::Tables(self.cos.narrow(0, t_old, s)?, self.sin.narrow(0, t_old, s)?),
            Mode::Train => {
                let positions: Vec<u32> = starts.iter().flat_map(|&st| (st..st + s).map(|p| p as u32)).collect();
                let ids = Tensor::new(positions.as_slice(), &self.device)?;
                let half = self.config.head_dim / 2;
                let cos = self.cos.index_select(&ids, 0)?.reshape((b, s, half))?;
                let sin = self.sin.index_select(&ids, 0)?.reshape((b, s, half))?;
                Rotary::Tables(cos, sin)
            }
        };
        // Training's additive mask: `[s, t]` when every row is causal from one start (row 0's
        // then serves all), else `[b, 1, 1, s, t]`.
        let additive = |v: &[bool]| v.iter().map(|&ok| if ok { 0.0 } else { f32::NEG_INFINITY }).collect::<Vec<f32>>();
        let mask = match mode {
            Mode::Infer => None,
            Mode::Train if aligned && s == 1 => None,
            Mode::Train if aligned => Some(Tensor::from_vec(additive(&visible[..s * t]), (s, t), &self.device)?),
            Mode::Train => Some(Tensor::from_vec(additive(&visible), (b, 1, 1, s, t), &self.device)?),
        };
        let eps = self.config.rms_eps as f32;
        let mut h = x.clone();
        let mut new_layers = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let past = cache.layers.get(i).map_or(&[][..], Vec::as_slice);
            let normed = rms_norm(&h, &layer.attn_norm, eps, mode)?;
            let (attn, kv) = match &rotary {
                Rotary::Positions(starts) => self.attention_infer(layer, &normed, past, starts, &visible)?,
                Rotary::Tables(cos, sin) => self.attention(layer, &normed, past, b, cos, sin, mask.as_ref(), mode)?,
            };
            new_layers.push(kv);
            h = (h + attn)?;
            let normed = rms_norm(&h, &layer.ffn_norm, eps, mode)?;
            let gate = linear(&layer.w_gate, &normed, mode)?;
            let up = linear(&layer.w_up, &normed, mode)?;
            let act = match mode {
                Mode::Infer => super::fused::silu_mul(&gate, &up)?,
                Mode::Train => (candle_nn::ops::silu(&gate)? * up)?,
            };
            let mlp = linear(&layer.w_down, &act, mode)?;
            h = (h + mlp)?;
        }
        if !aligned {
            let mut valid = Vec::with_capacity(b);
            for i in 0..b {
                let len = lens.map_or(s, |l| l[i]);
                let mut row: Vec<bool> = (0..t_old).map(|j| cache.valid(i, j)).collect();
                row.extend((0..s).map(|q| q < len));
                valid.push(row);
            }
            cache.key_valid = Some(valid);
            cache.next_pos = Some((0..b).map(|i| starts[i] + lens.map_or(s, |l| l[i])).collect());
        }
        cache.layers = new_layers;
        cache.len = t_old + s;
        cache.batch = b;
        Ok(rms_norm(&h, &self.norm, eps, mode)?)
    }

    /// Inference attention ([`super::attention`]): the cached blocks are read where they are and
    /// this call's keys and values become one more block.
    fn attention_infer(
        &self,
        layer: &Layer,
        x: &Tensor,
        past: &[(Tensor, Tensor)],
        starts: &[usize],
        visible: &[bool],
    ) -> Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        use super::attention::{attention, Call, Heads, Past};
        let c = &self.config;
        let (b, s, _) = x.dims3()?;
        let heads = Heads { n_head: c.n_head, n_kv: c.n_kv_head, head_dim: c.head_dim };
        let q = linear(&layer.wq, x, Mode::Infer)?.contiguous()?;
        let k = linear(&layer.wk, x, Mode::Infer)?.contiguous()?;
        let v = linear(&layer.wv, x, Mode::Infer)?.contiguous()?;
        let mut held = vec![q.storage_and_layout(), k.storage_and_layout(), v.storage_and_layout()];
        held.push(self.cos.storage_and_layout());
        held.push(self.sin.storage_and_layout());
        for (pk, pv) in past {
            held.push(pk.storage_and_layout());
            held.push(pv.storage_and_layout());
        }
        let slices = held.iter().map(|(st, layout)| super::cpu_f32(st, layout)).collect::<candle_core::Result<Vec<_>>>()?;
        let blocks: Vec<Past> = past
            .iter()
            .zip(slices[5..].chunks_exact(2))
            .map(|((pk, _), kv)| Past { k: kv[0], v: kv[1], rows: pk.dims()[0], t: pk.dims()[2] })
            .collect();
        let call = Call { heads, b, s, q: slices[0], k: slices[1], v: slices[2], starts, cos: slices[3], sin: slices[4], past: &blocks, visible };
        let out = attention(&call).map_err(Error::model)?;
        drop(held);
        let shape = (b, c.n_kv_head, s, c.head_dim);
        let (k, v) = (Tensor::from_vec(out.k, shape, &self.device)?, Tensor::from_vec(out.v, shape, &self.device)?);
        let mut blocks = past.to_vec();
        match blocks.last_mut() {
            // A decoded token joins the block of its rows: generation keeps a short block list
            // (one more small product per head and block) at the cost of copying that block.
            Some((pk, pv)) if s == 1 && pk.dims()[0] == b => {
                *pk = Tensor::cat(&[&*pk, &k], 2)?;
                *pv = Tensor::cat(&[&*pv, &v], 2)?;
            }
            _ => blocks.push((k, v)),
        }
        let y = Tensor::from_vec(out.y, (b, s, c.n_head * c.head_dim), &self.device)?;
        Ok((linear(&layer.wo, &y, Mode::Infer)?, blocks))
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        past: &[(Tensor, Tensor)],
        b: usize,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        mode: Mode,
    ) -> Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        let c = &self.config;
        let (_, s, _) = x.dims3()?;
        let q = linear(&layer.wq, x, mode)?.reshape((b, s, c.n_head, c.head_dim))?.transpose(1, 2)?;
        let k = linear(&layer.wk, x, mode)?.reshape((b, s, c.n_kv_head, c.head_dim))?.transpose(1, 2)?;
        let v = linear(&layer.wv, x, mode)?.reshape((b, s, c.n_kv_head, c.head_dim))?.transpose(1, 2)?;
        let q = rope(&q.contiguous()?, cos, sin, mode)?;
        let k = rope(&k.contiguous()?, cos, sin, mode)?;
        let v = v.contiguous()?;
        // The cached blocks, each broadcast to the batch, joined in position order.
        let mut ks = Vec::with_capacity(past.len() + 1);
        let mut vs = Vec::with_capacity(past.len() + 1);
        for (pk, pv) in past {
            let shape = (b, c.n_kv_head, pk.dims()[2], c.head_dim);
            ks.push(pk.broadcast_as(shape)?.contiguous()?);
            vs.push(pv.broadcast_as(shape)?.contiguous()?);
        }
        ks.push(k);
        vs.push(v);
        let (k, v) = (Tensor::cat(&ks, 2)?, Tensor::cat(&vs, 2)?);
        let t = k.dims()[2];
        let rep = c.n_head / c.n_kv_head;
        // Grouped-query attention: each key/value head serves `rep` query heads. Folding the
        // query heads of a group into the row dimension lets one matmul serve the group.
        let q = q.reshape((b, c.n_kv_head, rep * s, c.head_dim))?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let mut att = (q.matmul(&k.t()?)? * scale)?;
        if let Some(mask) = mask {
            // mask is [s, t] or [b, 1, 1, s, t]; the folded query rows repeat it `rep` times.
            let att5 = att.reshape((b, c.n_kv_head, rep, s, t))?;
            att = att5.broadcast_add(mask)?.reshape((b, c.n_kv_head, rep * s, t))?;
        }
        let att = match mode {
            Mode::Infer => candle_nn::ops::softmax_last_dim(&att)?,
            Mode::Train => candle_nn::ops::softmax(&att, D::Minus1)?,
        };
        let y = att.matmul(&v)?; // [b, kv, rep*s, hd]
        let y = y
            .reshape((b, c.n_head, s, c.head_dim))?
            .transpose(1, 2)?
            .reshape((b, s, c.n_head * c.head_dim))?;
        Ok((linear(&layer.wo, &y, mode)?, vec![(k, v)]))
    }

    /// Logits over the vocabulary for hidden states `[.., d]` (tied output embedding).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        if hidden.rank() == 1 {
            return Ok(self.lm_head.forward(&hidden.unsqueeze(0)?)?.squeeze(0)?);
        }
        // Training reaches the logits with gradients (stage 1); the tied weight stays frozen.
        let mode = if hidden.track_op() { Mode::Train } else { Mode::Infer };
        Ok(linear(&self.lm_head, hidden, mode)?)
    }

    /// Hidden states `[b, d]` at one position per batch row.
    pub fn gather_positions(hidden: &Tensor, positions: &[usize]) -> Result<Tensor> {
        let rows = positions
            .iter()
            .enumerate()
            .map(|(i, &p)| hidden.i((i, p)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::stack(&rows, 0)?)
    }
}

/// An f32 matrix packed for the AMX kernels (an f32 one where its shape does not tile).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_linear(w: &Tensor) -> Result<Linear> {
    if !super::amx_available() {
        return Err(Error::Usage("`--weights amx` needs a CPU with AMX (e.g. Xeon Sapphire Rapids); use f32".into()));
    }
    let (n, k) = w.dims2()?;
    let packed = super::with_f32_slice(w, |values| super::amx::AmxLinear::new(values, n, k))?;
    Ok(match packed {
        Some(lin) => Linear::Amx(lin),
        None => Linear::Candle(QMatMul::Tensor(w.clone())),
    })
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn amx_linear(_: &Tensor) -> Result<Linear> {
    Err(Error::Usage("`--weights amx` needs an x86-64 Linux CPU with AMX; use f32".into()))
}

/// A weight matrix applied to `x` ([`Linear::forward_train`] in training).
fn linear(w: &Linear, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
    match mode {
        Mode::Train => w.forward_train(x),
        Mode::Infer => w.forward(x),
    }
}

/// Where a call's rotary angles come from: each row's first position (inference, which reads
/// the model's tables itself) or the angles of every position (training's candle ops).
enum Rotary<'a> {
    Positions(&'a [usize]),
    Tables(Tensor, Tensor),
}

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32, mode: Mode) -> candle_core::Result<Tensor> {
    match mode {
        Mode::Infer => candle_nn::ops::rms_norm(x, weight, eps),
        Mode::Train => candle_nn::ops::rms_norm_slow(x, weight, eps),
    }
}

/// Interleaved rotary embedding (GGUF stores Q/K permuted for it). `cos`/`sin` are `[s, d/2]`
/// or, for rows at different positions, `[b, s, d/2]`.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
    match mode {
        Mode::Infer => candle_nn::rotary_emb::rope_i(x, cos, sin),
        Mode::Train => {
            // Differentiable formulation: pairs (x0, x1) rotated by the position's angle.
            let (b, h, s, d) = x.dims4()?;
            let rows = if cos.rank() == 3 { b } else { 1 };
            let cos = cos.reshape((rows, 1, s, d / 2, 1))?;
            let sin = sin.reshape((rows, 1, s, d / 2, 1))?;
            let x = x.reshape((b, h, s, d / 2, 2))?;
            let x0 = x.narrow(D::Minus1, 0, 1)?;
            let x1 = x.narrow(D::Minus1, 1, 1)?;
            let y0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
            let y1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
            Tensor::cat(&[y0, y1], D::Minus1)?.flatten_from(D::Minus2)
        }
    }
}
