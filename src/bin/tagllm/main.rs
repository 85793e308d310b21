//! `tagllm`: the command-line face of the core — generate text, predict with tags, evaluate
//! tags on labelled data, and inspect the tag library.

mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "tagllm", version, about = "Tag-LLM on SmolLM2: learned tags turn a small LLM into a chemistry and biology predictor")]
pub struct Cli {
    /// The GGUF model file.
    #[arg(long, global = true, default_value = tagllm::model::DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Folder of tag files (*.safetensors).
    #[arg(long, global = true, default_value = "tags")]
    pub tags: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Generate text, streamed as it comes. `<Name>` in the prompt splices in a loaded tag.
    Generate {
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 0.95)]
        top_p: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Predict with a function tag: one input per line (.smi, .txt, .csv with a header, FASTA).
    Predict {
        /// Function tag name, e.g. QED.
        #[arg(long)]
        tag: String,
        /// Input file, or `-` for standard input.
        #[arg(long, default_value = "-")]
        input: String,
        /// CSV column holding the inputs (default: smiles/sequence/first column).
        #[arg(long)]
        column: Option<String>,
        /// The protein of a two-input tag (e.g. BindingAffinity), one-letter codes or FASTA.
        #[arg(long, conflicts_with = "protein_file")]
        protein: Option<String>,
        /// A file holding that protein (FASTA or plain sequence).
        #[arg(long)]
        protein_file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Inputs per forward pass.
        #[arg(long, default_value_t = tagllm::predict::DEFAULT_BATCH)]
        batch: usize,
    },
    /// Evaluate a function tag on a labelled CSV: prints one JSON object of metrics.
    Eval {
        #[arg(long)]
        tag: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        input_col: String,
        #[arg(long)]
        target_col: String,
        /// Column of the protein for two-input tags.
        #[arg(long)]
        protein_col: Option<String>,
        /// Evaluate only the first N rows.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, default_value_t = tagllm::predict::DEFAULT_BATCH)]
        batch: usize,
        /// Also write every prediction to this CSV.
        #[arg(long)]
        predictions: Option<PathBuf>,
    },
    /// Inspect the tag library.
    Tags {
        #[command(subcommand)]
        action: TagsAction,
    },
}

#[derive(Subcommand)]
pub enum TagsAction {
    /// One line per tag.
    List,
    /// A tag's metadata as JSON.
    Show { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
