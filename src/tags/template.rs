//! Prompt templates: the text a function tag is used in, with its tags and inputs marked.
//!
//! Syntax: `<Name>` stands for the tag called `Name` (its `p` vectors go there), `{Name}` for
//! the input that the domain tag `Name` marks (a SMILES string, a spaced protein sequence).
//! Whitespace right before a tag is dropped (the tag stands for a word of its own); whitespace
//! right before an input is kept *with* the input, so ` {SMILES}` tokenises like ` CCO`.
//! The function tag itself must come last: its last position is where the prediction is read.

use crate::error::{Error, Result};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Tag(String),
    /// The input of the named domain; `lead` is the whitespace written before it.
    Input { domain: String, lead: String },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `name` may name a tag (letters, digits, `_`, `-`; at most 40 characters).
pub fn is_valid_tag_name(name: &str) -> bool {
    valid_name(name)
}

impl Template {
    pub fn parse(text: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut buf = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let close = match c {
                '<' => '>',
                '{' => '}',
                _ => {
                    buf.push(c);
                    continue;
                }
            };
            let rest = &text[i + 1..];
            let Some(end) = rest.find(close) else {
                return Err(Error::Usage(format!(
                    "template: '{c}' at character {} is never closed",
                    text[..i].chars().count() + 1
                )));
            };
            let name = &rest[..end];
            if !valid_name(name) {
                return Err(Error::Usage(format!("template: {c}{name}{close} is not a valid name")));
            }
            for _ in 0..=name.chars().count() {
                chars.next();
            }
            if c == '<' {
                let kept = buf.trim_end().to_string();
                if !kept.is_empty() {
                    pieces.push(Piece::Text(kept));
                }
                buf.clear();
                pieces.push(Piece::Tag(name.to_string()));
            } else {
                let trimmed = buf.trim_end().len();
                let lead = buf[trimmed..].to_string();
                buf.truncate(trimmed);
                if !buf.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut buf)));
                }
                pieces.push(Piece::Input { domain: name.to_string(), lead });
            }
        }
        if !buf.is_empty() {
            pieces.push(Piece::Text(buf));
        }
        Ok(Self { pieces })
    }

    /// Names of the tags used, in order of appearance.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Tag(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Names of the domains whose inputs are filled in.
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Input { domain, .. } => Some(domain.as_str()),
            _ => None,
        })
    }

    /// Checks the template of function tag `function`: it ends with `<function>`, uses it once,
    /// and every input is preceded by its domain tag.
    pub fn check_for_function(&self, function: &str) -> Result<()> {
        if self.pieces.last() != Some(&Piece::Tag(function.to_string())) {
            return Err(Error::Usage(format!("template must end with <{function}>")));
        }
        if self.tags().filter(|t| *t == function).count() != 1 {
            return Err(Error::Usage(format!("template uses <{function}> more than once")));
        }
        for (i, piece) in self.pieces.iter().enumerate() {
            if let Piece::Input { domain, .. } = piece {
                if i == 0 || self.pieces[i - 1] != Piece::Tag(domain.clone()) {
                    return Err(Error::Usage(format!(
                        "template: input {{{domain}}} must directly follow its tag <{domain}>"
                    )));
                }
            }
        }
        if self.inputs().next().is_none() {
            return Err(Error::Usage("template has no input placeholder such as {SMILES}".into()));
        }
        Ok(())
    }

    /// The template with the function tag and every tag removed: the "no tag" ablation prompt.
    pub fn without_tags(&self) -> Template {
        Template {
            pieces: self.pieces.iter().filter(|p| !matches!(p, Piece::Tag(_))).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_qed_template() {
        let t = Template::parse(
            "# # Input: The SMILES of the molecule is <SMILES> {SMILES}. \n# # Output: the quantitative estimate of druglikeness score is <QED>",
        )
        .unwrap();
        assert_eq!(
            t.pieces,
            vec![
                Piece::Text("# # Input: The SMILES of the molecule is".into()),
                Piece::Tag("SMILES".into()),
                Piece::Input { domain: "SMILES".into(), lead: " ".into() },
                Piece::Text(". \n# # Output: the quantitative estimate of druglikeness score is".into()),
                Piece::Tag("QED".into()),
            ]
        );
        t.check_for_function("QED").unwrap();
        assert!(t.check_for_function("LogP").is_err());
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::parse("a <SMILES b").is_err());
        assert!(Template::parse("a <> b").is_err());
        assert!(Template::parse("a {bad name} b").is_err());
        let no_tag_before_input = Template::parse("x {SMILES} <QED>").unwrap();
        assert!(no_tag_before_input.check_for_function("QED").is_err());
        let not_last = Template::parse("<SMILES> {SMILES} <QED> after").unwrap();
        assert!(not_last.check_for_function("QED").is_err());
    }
}
