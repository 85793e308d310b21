//! Reading the inputs of `tagllm predict --input FILE`.
//!
//! This module only *splits* a file into records (one SMILES or one protein
//! each) and remembers where each came from; it does not validate them. The
//! caller parses every record with [`parse_smiles`](super::parse_smiles) or
//! [`parse_protein`](super::parse_protein) and reports failures per line, so
//! one bad line never loses the rest of a large file. Only file-level
//! problems are errors here: an empty file, a requested column that does not
//! exist, more than [`MAX_RECORDS`] records.
//!
//! The format is chosen by file extension, else by content:
//!
//! | extension                  | format                                      |
//! |----------------------------|---------------------------------------------|
//! | `.smi`, `.smiles`          | one input per line, first token; rest is a name |
//! | `.txt`                     | one input per line                          |
//! | `.csv` / `.tsv`, `.tab`    | table with a header row                     |
//! | `.fasta .fa .faa .fas .fsa`| FASTA records                               |
//!
//! Without a known extension: a first line starting with `>` means FASTA; a
//! first line with commas (or tabs) and a known column name (or the requested
//! column) means a table; anything else is one input per line.
//!
//! In line files, blank lines and lines starting with `#` are skipped, and so
//! is a first line that is just a column name such as `smiles` or
//! `SMILES Name`. For SMILES, only the first whitespace-separated token of a
//! line is the input in *every* line format (a SMILES never contains spaces,
//! so the rest is a name, as in `.smi` files); protein lines are kept whole
//! because spaces inside a sequence are allowed.
//!
//! For tables the input column is `column` if given, else the first known
//! name for the input kind (see [`SMILES_COLUMNS`], [`PROTEIN_COLUMNS`]),
//! else the first column.

use super::protein::{split_fasta, FastaChunk};
use super::table::{parse_csv, parse_delimited, Table, TableError};
use std::fmt;

/// Most records accepted from one file.
pub const MAX_RECORDS: usize = 100_000;

/// Column names that hold SMILES, in order of preference (case-insensitive).
/// `drug` is the Therapeutics Data Commons name.
pub const SMILES_COLUMNS: [&str; 6] = [
    "smiles",
    "canonical_smiles",
    "isomeric_smiles",
    "compound_iso_smiles",
    "drug",
    "smi",
];

/// Column names that hold protein sequences, in order of preference
/// (case-insensitive). `target` is the Therapeutics Data Commons name.
pub const PROTEIN_COLUMNS: [&str; 5] = ["sequence", "protein", "seq", "target_sequence", "target"];

/// What the records are expected to contain; picks the default table column
/// and how line files are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Smiles,
    Protein,
}

/// One input as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line in the file (the header line for FASTA records).
    pub line: usize,
    /// The raw input, trimmed: a SMILES, a sequence, or a whole FASTA record
    /// (header and sequence lines).
    pub text: String,
}

/// How a file was read; see the module docs for the detection rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// `.smi`: one input per line, first token is the input.
    Smi,
    /// One input per line.
    Lines,
    /// Comma-separated table with header.
    Csv,
    /// Tab-separated table with header.
    Tsv,
    /// FASTA records.
    Fasta,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::Smi => "a .smi file",
            InputFormat::Lines => "a plain list (one input per line)",
            InputFormat::Csv => "a CSV table",
            InputFormat::Tsv => "a TSV table",
            InputFormat::Fasta => "a FASTA file",
        })
    }
}

/// File-level problems; per-record problems are found later by validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// Nothing to predict on.
    #[error("no inputs found (the file is empty or has only blank, comment or header lines)")]
    Empty,
    /// More than [`MAX_RECORDS`] records.
    #[error("too many inputs: {count} records (limit {limit})")]
    TooMany { count: usize, limit: usize },
    /// A column was requested but the file is not a table.
    #[error("a column ('{column}') was requested but the input was read as {format}, not a CSV/TSV table")]
    ColumnWithoutTable { column: String, format: InputFormat },
    /// The table could not be read, or the requested column is missing.
    #[error(transparent)]
    Table(#[from] TableError),
}

/// Splits an input file into records. `file_name` (any path) is used only
/// for its extension; `column` selects the table column.
pub fn read_records(
    text: &str,
    file_name: Option<&str>,
    column: Option<&str>,
    kind: InputKind,
) -> Result<Vec<Record>, RecordsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = detect_format(text, file_name, column);
    let records = match (format, column) {
        (InputFormat::Csv, _) => table_records(&parse_csv(text)?, column, kind)?,
        (InputFormat::Tsv, _) => table_records(&parse_delimited(text, '\t')?, column, kind)?,
        (_, Some(column)) => {
            return Err(RecordsError::ColumnWithoutTable {
                column: column.to_string(),
                format,
            })
        }
        (InputFormat::Fasta, None) => fasta_records(text),
        (InputFormat::Smi | InputFormat::Lines, None) => line_records(text, format, kind),
    };
    if records.is_empty() {
        return Err(RecordsError::Empty);
    }
    if records.len() > MAX_RECORDS {
        return Err(RecordsError::TooMany {
            count: records.len(),
            limit: MAX_RECORDS,
        });
    }
    Ok(records)
}

/// Picks the format from the file extension, else from the first non-blank
/// line. `column`, if given, counts as a header word for table detection.
pub fn detect_format(text: &str, file_name: Option<&str>, column: Option<&str>) -> InputFormat {
    let extension = file_name
        .and_then(|name| name.rsplit(['/', '\\']).next())
        .and_then(|base| base.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("smi" | "smiles") => return InputFormat::Smi,
        Some("txt") => return InputFormat::Lines,
        Some("csv") => return InputFormat::Csv,
        Some("tsv" | "tab") => return InputFormat::Tsv,
        Some("fasta" | "fa" | "faa" | "fas" | "fsa") => return InputFormat::Fasta,
        _ => {}
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if first.starts_with('>') {
        return InputFormat::Fasta;
    }
    let delimiter = if first.contains(',') {
        ','
    } else if first.contains('\t') {
        '\t'
    } else {
        return InputFormat::Lines;
    };
    // Neither SMILES nor sequences contain commas, so a comma line is a table
    // if it looks like a header. Tabs are weaker evidence: `.smi` content is
    // often `SMILES<TAB>name` without a header.
    let header_like = first.split(delimiter).any(|field| {
        let field = field.trim().trim_matches('"').trim();
        is_known_column(field) || column.is_some_and(|c| c.trim().eq_ignore_ascii_case(field))
    });
    match (
        header_like || (delimiter == ',' && column.is_some()),
        delimiter,
    ) {
        (true, ',') => InputFormat::Csv,
        (true, _) => InputFormat::Tsv,
        (false, _) => InputFormat::Lines,
    }
}

fn is_known_column(name: &str) -> bool {
    SMILES_COLUMNS
        .iter()
        .chain(PROTEIN_COLUMNS.iter())
        .any(|c| c.eq_ignore_ascii_case(name))
}

fn table_records(
    table: &Table,
    column: Option<&str>,
    kind: InputKind,
) -> Result<Vec<Record>, RecordsError> {
    let index = match column {
        Some(name) => table.column(name)?,
        None => {
            let preferred: &[&str] = match kind {
                InputKind::Smiles => &SMILES_COLUMNS,
                InputKind::Protein => &PROTEIN_COLUMNS,
            };
            preferred
                .iter()
                .find_map(|name| {
                    table
                        .headers
                        .iter()
                        .position(|h| h.eq_ignore_ascii_case(name))
                })
                .unwrap_or(0)
        }
    };
    // A short row yields an empty text; validation then reports that line.
    Ok(table
        .rows
        .iter()
        .map(|row| Record {
            line: row.line,
            text: row.get(index).unwrap_or("").trim().to_string(),
        })
        .collect())
}

fn fasta_records(text: &str) -> Vec<Record> {
    let chunks = split_fasta(text);
    if chunks.is_empty() {
        // A FASTA-named file without headers: one bare (possibly wrapped)
        // sequence.
        return text
            .lines()
            .position(|l| !l.trim().is_empty())
            .map(|i| {
                vec![Record {
                    line: i + 1,
                    text: text.trim().to_string(),
                }]
            })
            .unwrap_or_default();
    }
    chunks
        .into_iter()
        .map(|chunk| match chunk {
            // Kept, not dropped: validation will say what is wrong with it.
            FastaChunk::Leading { line, text } | FastaChunk::Record { line, text } => Record {
                line,
                text: text.to_string(),
            },
        })
        .collect()
}

fn line_records(text: &str, format: InputFormat, kind: InputKind) -> Vec<Record> {
    let first_token_only = format == InputFormat::Smi || kind == InputKind::Smiles;
    let mut records = Vec::new();
    let mut seen_content = false;
    for (index, line) in text.lines().enumerate() {
        let line_text = line.trim();
        if line_text.is_empty() || line_text.starts_with('#') {
            continue;
        }
        let first_token = line_text.split_whitespace().next().unwrap_or("");
        // A header such as `smiles` or `SMILES Name` on the first line.
        if !seen_content && is_known_column(first_token) {
            seen_content = true;
            continue;
        }
        seen_content = true;
        let text = if first_token_only {
            first_token
        } else {
            line_text
        };
        records.push(Record {
            line: index + 1,
            text: text.to_string(),
        });
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: usize, text: &str) -> Record {
        Record {
            line,
            text: text.to_string(),
        }
    }

    fn read(text: &str, name: Option<&str>, column: Option<&str>, kind: InputKind) -> Vec<Record> {
        read_records(text, name, column, kind).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn format_detection() {
        use InputFormat::*;
        let cases: &[(&str, Option<&str>, Option<&str>, InputFormat)] = &[
            ("CCO", Some("x.smi"), None, Smi),
            ("CCO", Some("dir.v2/X.SMILES"), None, Smi),
            ("a,b", Some("x.txt"), None, Lines),
            ("CCO", Some("C:\\data\\x.csv"), None, Csv),
            ("CCO", Some("x.tsv"), None, Tsv),
            ("MK", Some("x.faa"), None, Fasta),
            ("MK", Some("x.fa"), None, Fasta),
            ("\n  >sp|x\nMK", None, None, Fasta),
            ("id,SMILES,y\n1,CCO,2", None, None, Csv),
            ("\u{feff}\"smiles\",y\nCCO,2", Some("data"), None, Csv),
            ("id,mol\n1,CCO", None, Some("mol"), Csv),
            ("id,mol\n1,CCO", None, Some("missing"), Csv),
            ("id,mol\n1,CCO", None, None, Lines),
            ("sequence\tlabel\nMK\t1", None, None, Tsv),
            ("CCO\tethanol", None, None, Lines),
            ("CCO ethanol\nCC", None, None, Lines),
            ("", None, None, Lines),
        ];
        for &(text, name, column, expected) in cases {
            assert_eq!(
                detect_format(text, name, column),
                expected,
                "{text:?} {name:?}"
            );
        }
    }

    #[test]
    fn smi_and_line_files() {
        let text =
            "# comment\nSMILES Name\n\nCCO ethanol\n  c1ccccc1\tbenzene  \r\nC1CC bad ring\n";
        let expected = [rec(4, "CCO"), rec(5, "c1ccccc1"), rec(6, "C1CC")];
        assert_eq!(
            read(text, Some("in.smi"), None, InputKind::Smiles),
            expected
        );
        assert_eq!(read(text, None, None, InputKind::Smiles), expected);
        // Protein lines are kept whole (spaces inside are allowed).
        let text = "sequence\nMKT AYI\n#x\nmkv\n";
        assert_eq!(
            read(text, Some("p.txt"), None, InputKind::Protein),
            [rec(2, "MKT AYI"), rec(4, "mkv")]
        );
        // Only the first line may be a header.
        assert_eq!(
            read("CCO\nsmiles\n", None, None, InputKind::Smiles),
            [rec(1, "CCO"), rec(2, "smiles")]
        );
    }

    #[test]
    fn csv_files() {
        let text = "id,name,SMILES,y\n1,eth,CCO,0.5\n2,\"bad, one\",C1CC,1\n\n3,short\n";
        let expected = [rec(2, "CCO"), rec(3, "C1CC"), rec(5, "")];
        assert_eq!(read(text, Some("d.csv"), None, InputKind::Smiles), expected);
        assert_eq!(read(text, None, None, InputKind::Smiles), expected);
        assert_eq!(
            read(text, Some("d.csv"), Some("name"), InputKind::Smiles),
            [rec(2, "eth"), rec(3, "bad, one"), rec(5, "short")]
        );
        // No known column: the first one.
        assert_eq!(
            read("a,b\nx,y\n", Some("d.csv"), None, InputKind::Smiles),
            [rec(2, "x")]
        );
        // The kind picks between a SMILES and a sequence column (DTA data).
        let dta = "Drug,Target,Y\nCCO,MKT,5.0\n";
        assert_eq!(
            read(dta, Some("d.csv"), None, InputKind::Smiles),
            [rec(2, "CCO")]
        );
        assert_eq!(
            read(dta, Some("d.csv"), None, InputKind::Protein),
            [rec(2, "MKT")]
        );
        let tsv = "smiles\tsequence\nCCO\tMKT\n";
        assert_eq!(
            read(tsv, Some("d.tsv"), None, InputKind::Protein),
            [rec(2, "MKT")]
        );
        assert_eq!(read(tsv, None, None, InputKind::Smiles), [rec(2, "CCO")]);
    }

    #[test]
    fn fasta_files() {
        let text = ">a desc\nMKT\nAAA\n\n>b\nMKJ\n";
        assert_eq!(
            read(text, None, None, InputKind::Protein),
            [rec(1, ">a desc\nMKT\nAAA"), rec(5, ">b\nMKJ")]
        );
        assert_eq!(
            read("\n\nMKT\nAA\n", Some("x.fasta"), None, InputKind::Protein),
            [rec(3, "MKT\nAA")]
        );
        assert_eq!(
            read("junk\n>a\nMK", Some("x.fa"), None, InputKind::Protein),
            [rec(1, "junk"), rec(2, ">a\nMK")]
        );
        // Records round-trip through the protein parser.
        let p = crate::input::parse_protein(&read(text, None, None, InputKind::Protein)[0].text)
            .unwrap();
        assert_eq!((p.name.as_deref(), p.sequence()), (Some("a"), "MKTAAA"));
    }

    #[test]
    fn file_level_errors() {
        let err = |text: &str, name: Option<&str>, column: Option<&str>| {
            read_records(text, name, column, InputKind::Smiles).unwrap_err()
        };
        assert_eq!(err("", None, None), RecordsError::Empty);
        assert_eq!(err("# only\n\n", Some("x.smi"), None), RecordsError::Empty);
        assert_eq!(err("smiles,y\n", Some("x.csv"), None), RecordsError::Empty);
        assert_eq!(
            err("", Some("x.csv"), None),
            RecordsError::Table(TableError::Empty)
        );
        let e = err("id,smiles\n1,C\n", Some("x.csv"), Some("mol"));
        assert_eq!(
            e.to_string(),
            "no column named 'mol' (available: id, smiles)"
        );
        let e = err("CCO\n", Some("x.smi"), Some("mol"));
        assert_eq!(
            e.to_string(),
            "a column ('mol') was requested but the input was read as a .smi file, not a CSV/TSV table"
        );
        let e = err("a,\"b\n1,2\n", Some("x.csv"), None);
        assert_eq!(
            e.to_string(),
            "unterminated quoted field starting on line 1"
        );
    }

    #[test]
    fn record_limit() {
        let text = "C\n".repeat(MAX_RECORDS);
        assert_eq!(
            read(&text, None, None, InputKind::Smiles).len(),
            MAX_RECORDS
        );
        let text = "C\n".repeat(MAX_RECORDS + 5);
        let e = read_records(&text, None, None, InputKind::Smiles).unwrap_err();
        assert_eq!(
            e,
            RecordsError::TooMany {
                count: 100_005,
                limit: 100_000
            }
        );
        assert_eq!(
            e.to_string(),
            "too many inputs: 100005 records (limit 100000)"
        );
    }

    /// The fixture files, end to end through the validators: good records
    /// parse, bad ones fail on their own line without stopping the rest.
    #[test]
    fn fixture_files() {
        use crate::input::{parse_protein, parse_smiles};
        let smi = include_str!("../../tests/fixtures/inputs/molecules.smi");
        let records = read(smi, Some("molecules.smi"), None, InputKind::Smiles);
        let lines: Vec<usize> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 6, 7, 8]);
        let bad: Vec<usize> = records
            .iter()
            .filter(|r| parse_smiles(&r.text).is_err())
            .map(|r| r.line)
            .collect();
        assert_eq!(bad, [6]);

        let csv = include_str!("../../tests/fixtures/inputs/molecules.csv");
        let records = read(csv, Some("molecules.csv"), None, InputKind::Smiles);
        let results: Vec<(usize, bool)> = records
            .iter()
            .map(|r| (r.line, parse_smiles(&r.text).is_ok()))
            .collect();
        assert_eq!(results, [(2, true), (3, true), (5, false), (6, false)]);

        let fasta = include_str!("../../tests/fixtures/inputs/proteins.fasta");
        let records = read(fasta, Some("proteins.fasta"), None, InputKind::Protein);
        let proteins: Vec<_> = records
            .iter()
            .map(|r| (r.line, parse_protein(&r.text)))
            .collect();
        assert_eq!(proteins.len(), 3);
        let hba = proteins[0].1.as_ref().unwrap();
        assert_eq!(
            (proteins[0].0, hba.name.as_deref(), hba.len()),
            (1, Some("sp|P69905|HBA_HUMAN"), 142)
        );
        assert_eq!(
            proteins[1],
            (
                5,
                Err(crate::input::ProteinError::InvalidResidue {
                    position: 11,
                    ch: 'J'
                })
            )
        );
        assert_eq!(proteins[2].1.as_ref().unwrap().sequence(), "MKVLAAGIVG");
    }

    #[test]
    fn never_panics() {
        let alphabet = ['C', ',', '"', '\n', '>', '\t', ' ', '#', 'é'];
        let mut stack = vec![String::new()];
        while let Some(s) = stack.pop() {
            for name in [
                None,
                Some("a.smi"),
                Some("a.csv"),
                Some("a.fasta"),
                Some("."),
            ] {
                for kind in [InputKind::Smiles, InputKind::Protein] {
                    let _ = read_records(&s, name, None, kind);
                    let _ = read_records(&s, name, Some("C"), kind);
                }
            }
            if s.chars().count() < 5 {
                for c in alphabet {
                    let mut t = s.clone();
                    t.push(c);
                    stack.push(t);
                }
            }
        }
    }
}
