//! Protein sequence validation: bare sequences and FASTA.
//!
//! Accepted input for [`parse_protein`]:
//!
//! * a bare one-letter sequence in either case; whitespace and line breaks
//!   anywhere are ignored (sequences are often pasted wrapped at 60 columns);
//! * or exactly one FASTA record: a `>name description` header line followed
//!   by sequence lines. The name is the first word after `>`.
//!
//! Allowed residues are the 20 standard amino acids plus `U` (selenocysteine),
//! `O` (pyrrolysine), and the ambiguity codes `B`, `Z`, `X`. A single `*` stop
//! at the very end is accepted and dropped, as many FASTA exports end with it.
//! Everything else (digits, gap `-`, `J`, punctuation) is rejected with its
//! 1-based residue position, counting residues only (not whitespace), so the
//! number matches what sequence viewers show.
//!
//! [`parse_fasta`] splits a multi-record file; each record is validated on
//! its own so one bad record does not hide the others.

use std::fmt;

/// Longest protein accepted, in residues.
///
/// Long enough for almost all single chains (titin aside); the model's
/// context is the real limit.
pub const MAX_PROTEIN_RESIDUES: usize = 3000;

/// Why a protein sequence was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProteinError {
    /// No residues at all (empty text, or a FASTA header with no sequence).
    #[error("empty protein sequence")]
    Empty,
    /// More residues than [`MAX_PROTEIN_RESIDUES`].
    #[error("protein too long: {len} residues (limit {limit})")]
    TooLong { len: usize, limit: usize },
    /// A character that is not an allowed one-letter residue code.
    #[error("invalid residue {ch:?} at position {position}")]
    InvalidResidue {
        /// 1-based residue index (whitespace not counted).
        position: usize,
        ch: char,
    },
    /// A `*` stop that is not the last residue.
    #[error("stop '*' at position {position} is only allowed at the end of the sequence")]
    StopInMiddle { position: usize },
    /// [`parse_protein`] was given a file with several FASTA records.
    #[error("expected one sequence but found {count} FASTA records")]
    MultipleRecords { count: usize },
    /// Sequence lines before the first `>` header of a FASTA file.
    #[error("sequence text on line {line} comes before the first '>' header")]
    TextBeforeHeader { line: usize },
}

/// A validated protein sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Protein {
    /// The FASTA record name (first word after `>`), if there was a header.
    pub name: Option<String>,
    sequence: String,
}

impl Protein {
    /// Upper-case one-letter sequence, without whitespace or stop.
    pub fn sequence(&self) -> &str {
        &self.sequence
    }

    /// Number of residues.
    pub fn len(&self) -> usize {
        self.sequence.len()
    }

    /// Always false for a parsed protein (empty input is an error); provided
    /// because `len` is.
    pub fn is_empty(&self) -> bool {
        self.sequence.is_empty()
    }

    /// Residues separated by single spaces (`"M K T A"`). Tokenizers for
    /// general LLMs merge runs of letters unpredictably; spacing them makes
    /// one residue map to one token.
    pub fn spaced(&self) -> String {
        let mut out = String::with_capacity(self.sequence.len() * 2);
        for (i, c) in self.sequence.chars().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }
}

impl fmt::Display for Protein {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sequence)
    }
}

/// Parses a bare sequence or a single FASTA record.
pub fn parse_protein(text: &str) -> Result<Protein, ProteinError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = split_fasta(text);
    match records.as_slice() {
        // No header at all: the whole text is a bare sequence.
        [] => parse_sequence(text, None),
        [FastaChunk::Record { text, .. }] => parse_record(text),
        [FastaChunk::Leading { line, .. }, ..] => {
            Err(ProteinError::TextBeforeHeader { line: *line })
        }
        _ => Err(ProteinError::MultipleRecords {
            count: records
                .iter()
                .filter(|r| matches!(r, FastaChunk::Record { .. }))
                .count(),
        }),
    }
}

/// Parses a multi-record FASTA file. Each entry is the 1-based line of the
/// record's header and that record's result. Text before the first header
/// becomes an entry with [`ProteinError::TextBeforeHeader`]; a file without
/// any header is treated as one bare sequence at line 1.
pub fn parse_fasta(text: &str) -> Vec<(usize, Result<Protein, ProteinError>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let chunks = split_fasta(text);
    if chunks.is_empty() {
        if text.trim().is_empty() {
            return Vec::new();
        }
        return vec![(1, parse_sequence(text, None))];
    }
    chunks
        .into_iter()
        .map(|chunk| match chunk {
            FastaChunk::Leading { line, .. } => {
                (line, Err(ProteinError::TextBeforeHeader { line }))
            }
            FastaChunk::Record { line, text } => (line, parse_record(text)),
        })
        .collect()
}

/// A piece of a FASTA file, as a slice of the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FastaChunk<'a> {
    /// Non-blank text before the first header (first non-blank line number).
    Leading { line: usize, text: &'a str },
    /// A header line and the sequence lines up to the next header, trimmed.
    Record { line: usize, text: &'a str },
}

/// Splits text at header lines (lines whose first non-blank character is
/// `>`). Returns an empty list when there is no header at all.
pub(crate) fn split_fasta(text: &str) -> Vec<FastaChunk<'_>> {
    // Byte offsets and line numbers of every header line.
    let mut headers = Vec::new();
    let mut first_text_line = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('>') {
            headers.push((offset + (line.len() - trimmed.len()), index + 1));
        } else if headers.is_empty() && first_text_line.is_none() && !trimmed.is_empty() {
            first_text_line = Some(index + 1);
        }
        offset += line.len();
    }
    let Some(&(first_start, _)) = headers.first() else {
        return Vec::new();
    };
    let mut chunks = Vec::with_capacity(headers.len() + 1);
    if let Some(line) = first_text_line {
        chunks.push(FastaChunk::Leading {
            line,
            text: text[..first_start].trim(),
        });
    }
    for (k, &(start, line)) in headers.iter().enumerate() {
        let end = headers.get(k + 1).map_or(text.len(), |&(next, _)| next);
        chunks.push(FastaChunk::Record {
            line,
            text: text[start..end].trim(),
        });
    }
    chunks
}

/// Parses one `>header\nSEQ...` record.
fn parse_record(record: &str) -> Result<Protein, ProteinError> {
    let record = record.trim_start();
    let (header, body) = record.split_once('\n').unwrap_or((record, ""));
    let name = header
        .trim_start_matches('>')
        .split_whitespace()
        .next()
        .map(str::to_string);
    parse_sequence(body, name)
}

fn is_residue(c: char) -> bool {
    matches!(
        c,
        'A' | 'C'
            | 'D'
            | 'E'
            | 'F'
            | 'G'
            | 'H'
            | 'I'
            | 'K'
            | 'L'
            | 'M'
            | 'N'
            | 'P'
            | 'Q'
            | 'R'
            | 'S'
            | 'T'
            | 'V'
            | 'W'
            | 'Y'
            | 'U'
            | 'O'
            | 'B'
            | 'Z'
            | 'X'
    )
}

/// Validates sequence text (no header), ignoring whitespace.
fn parse_sequence(body: &str, name: Option<String>) -> Result<Protein, ProteinError> {
    let mut sequence = String::new();
    let mut stop_at = None;
    for (index, c) in body.chars().filter(|c| !c.is_whitespace()).enumerate() {
        let position = index + 1;
        if let Some(stop) = stop_at {
            // Something follows a '*': the stop was not at the end.
            return Err(ProteinError::StopInMiddle { position: stop });
        }
        let upper = c.to_ascii_uppercase();
        if upper == '*' {
            stop_at = Some(position);
        } else if is_residue(upper) {
            sequence.push(upper);
        } else {
            return Err(ProteinError::InvalidResidue { position, ch: c });
        }
    }
    if sequence.is_empty() {
        return Err(ProteinError::Empty);
    }
    if sequence.len() > MAX_PROTEIN_RESIDUES {
        return Err(ProteinError::TooLong {
            len: sequence.len(),
            limit: MAX_PROTEIN_RESIDUES,
        });
    }
    Ok(Protein { name, sequence })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_sequences() {
        let p = parse_protein("mktayIAKQR").unwrap();
        assert_eq!(p.sequence(), "MKTAYIAKQR");
        assert_eq!(p.len(), 10);
        assert!(!p.is_empty());
        assert_eq!(p.name, None);
        assert_eq!(p.spaced(), "M K T A Y I A K Q R");
        let p = parse_protein("  MKT AYI\r\n  AKQ\tR*\n").unwrap();
        assert_eq!(p.sequence(), "MKTAYIAKQR");
        assert_eq!(parse_protein("UOBZX").unwrap().sequence(), "UOBZX");
        assert_eq!(parse_protein("\u{feff}MK").unwrap().sequence(), "MK");
        assert_eq!(parse_protein("M").unwrap().spaced(), "M");
    }

    #[test]
    fn single_fasta_record() {
        let p = parse_protein(
            ">sp|P69905|HBA_HUMAN Hemoglobin subunit alpha\nMVLSPADKTN\nVKAAWGKVGA*\n",
        )
        .unwrap();
        assert_eq!(p.name.as_deref(), Some("sp|P69905|HBA_HUMAN"));
        assert_eq!(p.sequence(), "MVLSPADKTNVKAAWGKVGA");
        let p = parse_protein(">\nMK").unwrap();
        assert_eq!(p.name, None);
        assert_eq!(p.sequence(), "MK");
        let p = parse_protein("\r\n>x\r\nmk\r\n").unwrap();
        assert_eq!((p.name.as_deref(), p.sequence()), (Some("x"), "MK"));
    }

    #[test]
    fn errors() {
        use ProteinError::*;
        let cases: &[(&str, ProteinError)] = &[
            ("", Empty),
            ("  \n ", Empty),
            (">name only\n", Empty),
            (
                "MKTAYIAKQRQISFVKJ",
                InvalidResidue {
                    position: 17,
                    ch: 'J',
                },
            ),
            (
                "MK TA\nY1",
                InvalidResidue {
                    position: 6,
                    ch: '1',
                },
            ),
            (
                "MK-TA",
                InvalidResidue {
                    position: 3,
                    ch: '-',
                },
            ),
            ("MK*TA", StopInMiddle { position: 3 }),
            ("MK**", StopInMiddle { position: 3 }),
            (
                "MKé",
                InvalidResidue {
                    position: 3,
                    ch: 'é',
                },
            ),
            (
                "\u{0}",
                InvalidResidue {
                    position: 1,
                    ch: '\u{0}',
                },
            ),
            (">a\nMK\n>b\nMK", MultipleRecords { count: 2 }),
            ("MK\n>b\nMK", TextBeforeHeader { line: 1 }),
            (
                ">a\nMKTXJ",
                InvalidResidue {
                    position: 5,
                    ch: 'J',
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_protein(text).as_ref(),
                Err(expected),
                "input {text:?}"
            );
        }
        let long = "A".repeat(3001);
        assert_eq!(
            parse_protein(&long),
            Err(TooLong {
                len: 3001,
                limit: 3000
            })
        );
        assert!(parse_protein(&"A".repeat(3000)).is_ok());
    }

    #[test]
    fn error_messages() {
        let e = ProteinError::InvalidResidue {
            position: 17,
            ch: 'J',
        };
        assert_eq!(e.to_string(), "invalid residue 'J' at position 17");
        let e = ProteinError::TooLong {
            len: 3001,
            limit: 3000,
        };
        assert_eq!(
            e.to_string(),
            "protein too long: 3001 residues (limit 3000)"
        );
        // Control characters are escaped rather than printed raw.
        let e = ProteinError::InvalidResidue {
            position: 1,
            ch: '\u{0}',
        };
        assert_eq!(e.to_string(), "invalid residue '\\0' at position 1");
    }

    #[test]
    fn multi_record_fasta() {
        let text = "junk\n>a first\nMKT\nAAA\n\n>b\nMKJ\n>c\n\n>d desc\nmk*\n";
        let out = parse_fasta(text);
        let lines: Vec<usize> = out.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 2, 6, 8, 10]);
        assert_eq!(out[0].1, Err(ProteinError::TextBeforeHeader { line: 1 }));
        let a = out[1].1.as_ref().unwrap();
        assert_eq!((a.name.as_deref(), a.sequence()), (Some("a"), "MKTAAA"));
        assert_eq!(
            out[2].1,
            Err(ProteinError::InvalidResidue {
                position: 3,
                ch: 'J'
            })
        );
        assert_eq!(out[3].1, Err(ProteinError::Empty));
        assert_eq!(out[4].1.as_ref().unwrap().sequence(), "MK");
        assert!(parse_fasta("").is_empty());
        assert!(parse_fasta(" \n\n").is_empty());
        let bare = parse_fasta("MKT\nAAA");
        assert_eq!(bare.len(), 1);
        assert_eq!(bare[0].1.as_ref().unwrap().sequence(), "MKTAAA");
    }

    #[test]
    fn split_keeps_record_text() {
        let chunks = split_fasta("  >a x\nMK\n\n>b\r\nAA\r\n");
        assert_eq!(
            chunks,
            [
                FastaChunk::Record {
                    line: 1,
                    text: ">a x\nMK"
                },
                FastaChunk::Record {
                    line: 4,
                    text: ">b\r\nAA"
                },
            ]
        );
    }

    #[test]
    fn never_panics() {
        let mut state = 7u64;
        let alphabet: Vec<char> = "ACDEFGHIKLMNPQRSTVWYacgt*>- \n\r\t1é\u{0}\u{feff}"
            .chars()
            .collect();
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (state >> 40) as usize % 40;
            let s: String = (0..len)
                .map(|k| {
                    let x = state.wrapping_mul(k as u64 + 1).rotate_left(k as u32 * 7) >> 33;
                    alphabet[x as usize % alphabet.len()]
                })
                .collect();
            let _ = parse_protein(&s);
            let _ = parse_fasta(&s);
        }
    }
}
