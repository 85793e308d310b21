//! The crate's error type. Each variant says what went wrong *and* what the user can do
//! about it; messages are shown as they are in the CLI and the web page.

use thiserror::Error;

/// Everything that can go wrong in the core.
#[derive(Debug, Error)]
pub enum Error {
    /// The model file is missing, truncated, corrupt or of a model this tool cannot run.
    #[error("model file: {0}")]
    Model(String),

    /// A tag file is malformed or does not fit the loaded model.
    #[error("tag file {file}: {reason}")]
    Tag { file: String, reason: String },

    /// A request that cannot be served as asked (e.g. an unknown tag name).
    #[error("{0}")]
    Usage(String),

    /// The tokenizer could not be built or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A tensor operation failed (a bug, or memory exhausted).
    #[error("tensor computation: {0}")]
    Tensor(#[from] candle_core::Error),

    #[error("{0}")]
    Io(#[from] std::io::Error),

    /// The GPU backend has no adapter, or a GPU operation failed.
    #[error("GPU: {0}")]
    Gpu(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn model(msg: impl Into<String>) -> Self {
        Error::Model(msg.into())
    }
    pub(crate) fn tag(file: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Tag { file: file.into(), reason: reason.into() }
    }
}
