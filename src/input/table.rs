//! A small CSV/TSV reader for input and dataset tables.
//!
//! Format (RFC 4180, read leniently because these files are hand-made or
//! exported from spreadsheets):
//!
//! * the first non-blank record is the header; header names are trimmed;
//! * fields are separated by commas, or by tabs when the header line has tabs
//!   and no commas (use [`parse_delimited`] to force a delimiter);
//! * a field that starts with `"` (after optional spaces) is quoted: it may
//!   contain the delimiter, line breaks, and `""` for a literal quote. Text
//!   after the closing quote is kept rather than rejected, and a `"` inside
//!   an unquoted field is an ordinary character;
//! * LF, CRLF and lone CR line endings; a leading UTF-8 BOM is dropped;
//! * blank lines are skipped;
//! * a row with the wrong number of fields is kept as is: the caller reports
//!   it against that row's line number instead of failing the whole file.
//!
//! The only fatal errors are an empty file and a quote left open at the end
//! (everything after it would be swallowed into one field).

/// Why a table could not be read, or a column not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// No header row: the text is empty or only blank lines.
    #[error("the table is empty (no header row)")]
    Empty,
    /// A quoted field that is never closed.
    #[error("unterminated quoted field starting on line {line}")]
    UnterminatedQuote { line: usize },
    /// [`Table::column`] found no header with that name.
    #[error("no column named '{name}' (available: {})", available.join(", "))]
    MissingColumn {
        name: String,
        available: Vec<String>,
    },
}

/// A parsed table: the header names and the data rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

/// One data row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line in the file where the row starts.
    pub line: usize,
    /// Field values, unmodified (not trimmed). May be shorter or longer than
    /// the header.
    pub fields: Vec<String>,
}

impl Table {
    /// Index of the column called `name`: an exact match first, then a
    /// case-insensitive one (`SMILES` finds `smiles`).
    pub fn column(&self, name: &str) -> Result<usize, TableError> {
        let name = name.trim();
        self.headers
            .iter()
            .position(|h| h == name)
            .or_else(|| {
                let lower = name.to_lowercase();
                self.headers.iter().position(|h| h.to_lowercase() == lower)
            })
            .ok_or_else(|| TableError::MissingColumn {
                name: name.to_string(),
                available: self.headers.clone(),
            })
    }
}

impl Row {
    /// The field at `idx`, or `None` if this row is too short.
    pub fn get(&self, idx: usize) -> Option<&str> {
        self.fields.get(idx).map(String::as_str)
    }
}

/// Parses CSV text, or TSV when the header line has tabs and no commas.
pub fn parse_csv(text: &str) -> Result<Table, TableError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let delimiter = if header_line.contains('\t') && !header_line.contains(',') {
        '\t'
    } else {
        ','
    };
    parse_delimited(text, delimiter)
}

/// Parses delimited text with a fixed delimiter (`,` for CSV, `\t` for TSV).
pub fn parse_delimited(text: &str, delimiter: char) -> Result<Table, TableError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Records::new(text, delimiter);
    let mut records_out = Vec::new();
    while let Some(record) = records.next_record()? {
        records_out.push(record);
    }
    let mut iter = records_out.into_iter();
    let Some(header) = iter.next() else {
        return Err(TableError::Empty);
    };
    Ok(Table {
        headers: header.fields.iter().map(|h| h.trim().to_string()).collect(),
        rows: iter.collect(),
    })
}

/// Record-at-a-time tokenizer over the text.
struct Records<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    delimiter: char,
    /// Current 1-based line number.
    line: usize,
}

/// Where the tokenizer is inside the current field.
#[derive(PartialEq, Eq)]
enum FieldState {
    /// Unquoted text (possibly only leading spaces so far).
    Plain,
    /// Inside `"..."`.
    Quoted,
    /// After the closing quote of a quoted field.
    AfterQuote,
}

impl<'a> Records<'a> {
    fn new(text: &'a str, delimiter: char) -> Self {
        Records {
            chars: text.chars().peekable(),
            delimiter,
            line: 1,
        }
    }

    /// Reads the next non-blank record, or `None` at end of input.
    fn next_record(&mut self) -> Result<Option<Row>, TableError> {
        loop {
            if self.chars.peek().is_none() {
                return Ok(None);
            }
            let row = self.read_record()?;
            let blank = row.fields.len() == 1 && row.fields[0].trim().is_empty();
            if !blank {
                return Ok(Some(row));
            }
        }
    }

    /// Reads one record up to and including its line break.
    fn read_record(&mut self) -> Result<Row, TableError> {
        let start_line = self.line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut state = FieldState::Plain;
        let mut quote_line = start_line;
        while let Some(c) = self.chars.next() {
            if state == FieldState::Quoted {
                match c {
                    '"' if self.chars.peek() == Some(&'"') => {
                        self.chars.next();
                        field.push('"');
                    }
                    '"' => state = FieldState::AfterQuote,
                    _ => {
                        if c == '\n' || (c == '\r' && self.chars.peek() != Some(&'\n')) {
                            self.line += 1;
                        }
                        field.push(c);
                    }
                }
                continue;
            }
            if c == '\n' || c == '\r' {
                if c == '\r' && self.chars.peek() == Some(&'\n') {
                    self.chars.next();
                }
                self.line += 1;
                fields.push(field);
                return Ok(Row {
                    line: start_line,
                    fields,
                });
            }
            if c == self.delimiter {
                fields.push(std::mem::take(&mut field));
                state = FieldState::Plain;
                continue;
            }
            match state {
                // A quote opens a quoted field only at its start (leading
                // spaces allowed and dropped: `a, "b"`).
                FieldState::Plain if c == '"' && field.trim().is_empty() => {
                    field.clear();
                    state = FieldState::Quoted;
                    quote_line = self.line;
                }
                // Spaces between the closing quote and the delimiter.
                FieldState::AfterQuote if c == ' ' || c == '\t' => {}
                _ => field.push(c),
            }
        }
        if state == FieldState::Quoted {
            return Err(TableError::UnterminatedQuote { line: quote_line });
        }
        fields.push(field);
        Ok(Row {
            line: start_line,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: usize, fields: &[&str]) -> Row {
        Row {
            line,
            fields: fields.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn basic_csv() {
        let t = parse_csv("smiles,label\nCCO,1.5\nc1ccccc1,2\n").unwrap();
        assert_eq!(t.headers, ["smiles", "label"]);
        assert_eq!(
            t.rows,
            [row(2, &["CCO", "1.5"]), row(3, &["c1ccccc1", "2"])]
        );
        assert_eq!(t.rows[0].get(1), Some("1.5"));
        assert_eq!(t.rows[0].get(2), None);
    }

    #[test]
    fn quotes_crlf_bom_blank_lines() {
        let text = "\u{feff}name, \"smiles\" ,note\r\n\r\n\"a, b\",CCO,\"say \"\"hi\"\"\"\r\n  \r\nx,\"multi\nline\",\r\ny,C\"C,z\n";
        let t = parse_csv(text).unwrap();
        assert_eq!(t.headers, ["name", "smiles", "note"]);
        assert_eq!(
            t.rows,
            [
                row(3, &["a, b", "CCO", "say \"hi\""]),
                row(5, &["x", "multi\nline", ""]),
                row(7, &["y", "C\"C", "z"]),
            ]
        );
    }

    #[test]
    fn lone_cr_and_no_trailing_newline() {
        let t = parse_csv("a,b\r1,2\r3,4").unwrap();
        assert_eq!(t.rows, [row(2, &["1", "2"]), row(3, &["3", "4"])]);
    }

    #[test]
    fn tsv_detection() {
        let t = parse_csv("smiles\tlabel\nCC,O\t1\n").unwrap();
        assert_eq!(t.headers, ["smiles", "label"]);
        assert_eq!(t.rows, [row(2, &["CC,O", "1"])]);
        // A comma in the header means CSV even if tabs appear too.
        let t = parse_csv("a\tb,c\n1\t2,3\n").unwrap();
        assert_eq!(t.headers, ["a\tb", "c"]);
        let t = parse_delimited("a,b\tc\n1,2\t3\n", '\t').unwrap();
        assert_eq!(t.headers, ["a,b", "c"]);
    }

    #[test]
    fn ragged_rows_are_kept() {
        let t = parse_csv("a,b,c\n1,2\n1,2,3,4\n").unwrap();
        assert_eq!(t.rows, [row(2, &["1", "2"]), row(3, &["1", "2", "3", "4"])]);
    }

    #[test]
    fn errors() {
        assert_eq!(parse_csv(""), Err(TableError::Empty));
        assert_eq!(parse_csv("\u{feff}\n \r\n"), Err(TableError::Empty));
        assert_eq!(parse_csv("\u{feff}"), Err(TableError::Empty));
        assert_eq!(
            parse_csv("a,b\n1,2\n3,\"oops\n4,5\n"),
            Err(TableError::UnterminatedQuote { line: 3 })
        );
    }

    #[test]
    fn column_lookup() {
        let t = parse_csv("ID,SMILES,smiles_2,Label\n").unwrap();
        assert_eq!(t.column("SMILES"), Ok(1));
        assert_eq!(t.column("smiles"), Ok(1));
        assert_eq!(t.column(" label "), Ok(3));
        let e = t.column("target").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no column named 'target' (available: ID, SMILES, smiles_2, Label)"
        );
        // Exact match wins over an earlier case-insensitive one.
        let t = parse_csv("Smiles,smiles\n").unwrap();
        assert_eq!(t.column("smiles"), Ok(1));
    }

    #[test]
    fn never_panics() {
        let alphabet = ['a', ',', '"', '\n', '\r', '\t', ' ', '\u{feff}', 'é'];
        // Every string of up to 6 characters from the alphabet.
        let mut stack = vec![String::new()];
        while let Some(s) = stack.pop() {
            let _ = parse_csv(&s);
            if s.chars().count() < 6 {
                for c in alphabet {
                    let mut t = s.clone();
                    t.push(c);
                    stack.push(t);
                }
            }
        }
    }
}
