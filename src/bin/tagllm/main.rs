//! `tagllm`: the command-line face of the core — generate text, predict with tags, evaluate
//! tags on labelled data, and inspect the tag library.

mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tagllm::model::Weights;

#[derive(Parser)]
#[command(name = "tagllm", version, about = "Tag-LLM on SmolLM2: learned tags turn a small LLM into a chemistry and biology predictor")]
pub struct Cli {
    /// The GGUF model file.
    #[arg(long, global = true, default_value = tagllm::model::DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Folder of tag files (*.safetensors).
    #[arg(long, global = true, default_value = "tags")]
    pub tags: PathBuf,
    /// How inference holds the weights: `auto` (the default: for predictions `amx` where the CPU
    /// has AMX, else `compact`; for `generate`, whose speed is that of reading the weights, `int16`
    /// where the CPU has AVX2 or AVX-512 VNNI), `f32` (the file's values expanded; what tags are trained on), `compact` (the
    /// file's blocks, expanded to f32 a panel at a time inside each product: f32's very results in
    /// a fifth of the memory), `amx` (the same
    /// values as two bf16 parts, products on the CPU's AMX tiles: within ~1e-5 of f32, ~2× the
    /// speed; Xeon Sapphire Rapids or later), `int16` (the file's Q4_1 blocks, our integer
    /// kernels with inputs rounded to 16 bits per block of 32: predictions within ~1e-4 of f32,
    /// 250 MB), `int8` (the same with 8-bit inputs: it costs accuracy with f32-trained tags) or
    /// `quantized` (candle's own quantised kernels). Training always uses f32.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub weights: WeightsArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum WeightsArg {
    Auto,
    F32,
    Compact,
    Amx,
    Int8,
    Int16,
    Quantized,
}

impl WeightsArg {
    /// The weights for predictions, evaluation and the benchmark (`auto`: f32's results).
    pub fn for_predictions(self) -> Weights {
        self.resolve(Weights::best_f32())
    }

    /// The weights for `generate` (`auto`: the file's blocks where the integer kernels have SIMD).
    pub fn for_generation(self) -> Weights {
        self.resolve(Weights::for_generation())
    }

    fn resolve(self, auto: Weights) -> Weights {
        match self {
            WeightsArg::Auto => auto,
            WeightsArg::F32 => Weights::F32,
            WeightsArg::Compact => Weights::Compact,
            WeightsArg::Amx => Weights::Amx,
            WeightsArg::Int8 => Weights::Int8,
            WeightsArg::Int16 => Weights::Int16,
            WeightsArg::Quantized => Weights::Quantized,
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Subcommand)]
// Parsed once per run: the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
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
    /// Train a tag (the three stages of Tag-LLM). Resumable: run the same command again.
    Train {
        #[command(subcommand)]
        stage: TrainStage,
    },
    /// Speed figures: matmul kernels, prefill at 50 and 512 tokens, decoding, and molecules/s of
    /// a function tag over 100 fixed molecules (the same in the page's benchmark).
    Bench {
        #[arg(long, default_value = "QED")]
        tag: String,
        /// `cpu` (threads: RAYON_NUM_THREADS, default all cores), or `gpu` (prefill only; a
        /// build with `--features gpu`).
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect the tag library.
    Tags {
        #[command(subcommand)]
        action: TagsAction,
    },
}

/// Optimisation flags shared by the stages.
#[derive(clap::Args, Clone)]
pub struct TrainFlags {
    #[arg(long, default_value_t = 500)]
    pub steps: usize,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Vectors per tag.
    #[arg(long, default_value_t = 10)]
    pub p: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Regression tags: fit the head in closed form (ridge) on this many examples before
    /// training; 0 starts from a zero head.
    #[arg(long, default_value_t = 256)]
    pub init_examples: usize,
    /// Two-input tags: at most this many examples of one protein per batch (and per protein in
    /// the validation subset); a batch mixes BATCH / PER_PROTEIN proteins.
    #[arg(long, default_value_t = 4)]
    pub per_protein: usize,
    /// Function tags: the head's learning rate as a fraction of LR.
    #[arg(long, default_value_t = 0.1)]
    pub lr_head_ratio: f64,
    /// Clip gradients to this global norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Regression tags: re-solve the head in closed form every this many steps (the ridge
    /// start's rows and every batch's since, older ones decaying), instead of moving it by
    /// AdamW (0: AdamW at LR × LR_HEAD_RATIO).
    #[arg(long, default_value_t = 10)]
    pub refit_every: usize,
    /// Where the tag is written (default: TAGS/NAME.safetensors).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand)]
// Parsed once per run: the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum TrainStage {
    /// Stage 1: a domain tag, by next-token prediction on unlabelled inputs (one per line).
    Domain {
        #[arg(long)]
        name: String,
        /// What the tag marks.
        #[arg(long, value_enum)]
        input: InputArg,
        /// One input per line.
        #[arg(long)]
        corpus: PathBuf,
        /// Use at most this many lines.
        #[arg(long, default_value_t = 100_000)]
        max_lines: usize,
        #[command(flatten)]
        flags: TrainFlags,
    },
    /// Stages 2 and 3: a function tag and its head; the domain tags in its template are frozen.
    Function {
        #[arg(long)]
        name: String,
        /// Prompt template with <Tag> and {Domain} placeholders, ending with <NAME>.
        #[arg(long)]
        template: String,
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        valid: PathBuf,
        /// Input columns, one per template input in order (e.g. sequence,smiles).
        #[arg(long, value_delimiter = ',')]
        input_cols: Vec<String>,
        #[arg(long, default_value = "target")]
        target_col: String,
        #[arg(long, value_enum, default_value = "regression")]
        output: OutputArg,
        /// The predicted quantity's name and units, shown with predictions.
        #[arg(long)]
        target_name: Option<String>,
        #[arg(long, default_value = "")]
        units: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A bounded target's range, LO,HI (QED: 0,1): predictions are clamped to it.
        #[arg(long, value_delimiter = ',')]
        range: Option<Vec<f64>>,
        #[arg(long)]
        max_train: Option<usize>,
        #[arg(long, default_value_t = 300)]
        max_valid: usize,
        #[arg(long, default_value_t = 100)]
        eval_every: usize,
        /// What the head reads: `last` (the tag's last state, as the paper) or `means` (that
        /// state plus the mean state over each input's tokens).
        #[arg(long, value_enum, default_value = "means")]
        readout: ReadoutArg,
        #[command(flatten)]
        flags: TrainFlags,
    },
    /// The "no tag" ablation: the template with its tags removed and a ridge head fitted on the
    /// frozen model's last hidden state. Prints test metrics as JSON.
    Probe {
        #[arg(long)]
        template: String,
        #[arg(long)]
        train: PathBuf,
        /// Rows that choose the ridge penalty; without it, every fourth training row does and
        /// the head is refitted on all of them (exactly a function tag's ridge start).
        #[arg(long)]
        valid: Option<PathBuf>,
        #[arg(long)]
        test: PathBuf,
        /// Writes each test row's prediction as CSV `line,prediction` (line: the row's 1-based
        /// line in the test file, the header being line 1, when every row has a target).
        #[arg(long)]
        predictions: Option<PathBuf>,
        #[arg(long, value_delimiter = ',')]
        input_cols: Vec<String>,
        #[arg(long, default_value = "target")]
        target_col: String,
        #[arg(long, default_value_t = 2000)]
        max_train: usize,
        #[arg(long, default_value_t = 300)]
        max_valid: usize,
        #[arg(long)]
        max_test: Option<usize>,
        /// Read-out features, as for `train function`.
        #[arg(long, value_enum, default_value = "means")]
        readout: ReadoutArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum InputArg {
    Smiles,
    Protein,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReadoutArg {
    Last,
    Means,
}

impl From<ReadoutArg> for tagllm::tags::Readout {
    fn from(r: ReadoutArg) -> Self {
        match r {
            ReadoutArg::Last => Self::Last,
            ReadoutArg::Means => Self::LastAndInputMeans,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OutputArg {
    Regression,
    Binary,
}

#[derive(Subcommand)]
pub enum TagsAction {
    /// One line per tag.
    List,
    /// A tag's metadata as JSON.
    Show { name: String },
}

fn main() -> ExitCode {
    // Predictions run one batch per thread (predict/mod.rs); candle's own pool for element-wise
    // ops would then make those threads queue for it (measured: 24.5 vs 19.2 molecules/s on two
    // cores). Before any thread starts, and only where the user has not chosen.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
