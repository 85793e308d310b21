//! # tagllm
//!
//! Tag-LLM (Shen et al., ICML 2024) on a small quantised LLM: learned *input tags* — short
//! runs of continuous vectors — are spliced into the input embeddings of a frozen
//! SmolLM2-135M to predict chemistry and biology properties.
//!
//! Data flows one way, one module per arrow:
//! `input` (validate SMILES / proteins) → `tags` (template → prompt segments) →
//! `model` (forward pass) → `predict` (read-out → head → number).

pub mod bench;
pub mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod input;
pub mod metrics;
pub mod model;
pub mod predict;
pub mod rng;
pub mod tags;
#[cfg(not(target_arch = "wasm32"))]
pub mod train;
#[cfg(feature = "web")] pub mod app;

pub use error::{Error, Result};
