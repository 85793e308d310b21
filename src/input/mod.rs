//! User inputs: validation of SMILES strings and protein sequences, and
//! reading them from files (line lists, `.smi`, CSV/TSV tables, FASTA).
//!
//! Everything here works on text already in memory (no file system access),
//! so it compiles for `wasm32-unknown-unknown` and is shared by the CLI and
//! the browser build. Nothing here panics on arbitrary input: every problem
//! is a typed error that names a position or line.

pub mod protein;
pub mod records;
pub mod smiles;
pub mod table;

pub use protein::{parse_fasta, parse_protein, Protein, ProteinError, MAX_PROTEIN_RESIDUES};
pub use records::{
    detect_format, read_records, InputFormat, InputKind, Record, RecordsError, MAX_RECORDS,
};
pub use smiles::{parse_smiles, Smiles, SmilesError, MAX_SMILES_CHARS};
pub use table::{parse_csv, parse_delimited, Row, Table, TableError};
