//! Tags: learned vectors spliced into the model input. [`file`] is the on-disk format,
//! [`template`] the prompts function tags are used in, [`library`] the set a model can use.

pub mod file;
pub mod init;
pub mod library;
pub mod template;

pub use file::{InputType, OutputKind, Readout, Requirement, Tag, TagKind, TagMeta, Target, FORMAT_VERSION};
pub use library::TagLibrary;
pub use template::{Piece, Template};
