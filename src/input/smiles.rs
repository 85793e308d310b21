//! SMILES validation: a hand-written parser for the OpenSMILES grammar.
//!
//! The model only ever sees the SMILES text, so this module does not build a
//! molecule graph for chemistry. It checks that the text is *syntactically*
//! a SMILES string so that typos are reported with a column and a reason
//! instead of silently producing a meaningless prediction.
//!
//! What is checked (OpenSMILES, <http://opensmiles.org/opensmiles.html>):
//!
//! * atoms: the organic subset `B C N O P S F Cl Br I`, aromatic `b c n o p s`,
//!   the wildcard `*`, and bracket atoms
//!   `[isotope? symbol chirality? hcount? charge? class?]` where the symbol is
//!   any of the 118 element symbols, `*`, or an aromatic symbol
//!   (`b c n o p s se as te si ge sb`);
//! * chirality `@ @@ @TH1-2 @AL1-2 @SP1-3 @TB1-20 @OH1-30`, charges
//!   `+ ++ - -- +n -n` (|n| ≤ 15), hydrogen counts `H Hn`, atom classes `:n`;
//! * bonds `- = # $ : / \`, the dot disconnection `.`;
//! * branches `( )`: balanced, non-empty, and only after an atom;
//! * ring closures `0-9` and `%nn`, optionally preceded by a bond symbol; every
//!   ring bond must be closed, may not join an atom to itself or duplicate an
//!   existing bond, and the bond symbols on its two ends may not disagree.
//!
//! Deliberate choices:
//!
//! * No valence or aromaticity checks: they need a full perception algorithm
//!   and are error-prone for aromatic systems, so a chemically odd but
//!   well-formed string is accepted.
//! * Ring bonds are also accepted after a branch (`C(C)1CC1`), as RDKit does,
//!   although the strict grammar wants them before branches.
//! * `/` and `\` count as single bonds when comparing the two ends of a ring
//!   closure: their relative direction is reversed between the two ends, so
//!   only bond *orders* are compared (`C=1CC-1` is an error, `C/1CC\1` is not).
//! * Whitespace is never part of a SMILES; `.smi` names are split off by the
//!   file reader before this parser runs.
//!
//! Error positions are 1-based character columns in the *trimmed* text; errors
//! found at the end of input use `len + 1`.

use std::fmt;
use std::str::FromStr;

/// Longest SMILES accepted, in characters (after trimming).
///
/// Large drug molecules are well under 200 characters; the limit keeps the
/// model's context (and the browser) safe from pasted garbage.
pub const MAX_SMILES_CHARS: usize = 500;

/// Why a SMILES string was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SMILES at character {position}: {reason}")]
pub struct SmilesError {
    /// 1-based character column in the trimmed input; `len + 1` for errors at
    /// the end of input.
    pub position: usize,
    /// Human-readable reason, e.g. `unclosed ring bond 1 (opened at character 2)`.
    pub reason: String,
}

/// A syntactically valid SMILES string plus a few counts found while parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct Smiles {
    text: String,
    atoms: usize,
    ring_closures: usize,
    components: usize,
}

impl Smiles {
    /// The SMILES text as given, with surrounding whitespace removed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Number of heavy atoms written: every atom except hydrogens written as
    /// bracket atoms (`[H]`, `[2H]`, `[H+]`). Implicit hydrogens and `H`
    /// counts inside brackets are not atoms here. `*` counts as an atom.
    pub fn atom_count(&self) -> usize {
        self.atoms
    }

    /// Number of ring-closure bonds (pairs of matching ring-bond digits).
    pub fn ring_closures(&self) -> usize {
        self.ring_closures
    }

    /// Number of connected fragments. This equals the number of
    /// `.`-separated parts, except in the rare case where a ring bond joins
    /// two parts across a dot (`C1.C1` is one fragment).
    pub fn components(&self) -> usize {
        self.components
    }
}

impl fmt::Display for Smiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Smiles {
    type Err = SmilesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_smiles(s)
    }
}

/// Validates a SMILES string. Surrounding whitespace is trimmed first.
pub fn parse_smiles(text: &str) -> Result<Smiles, SmilesError> {
    let text = text.trim();
    check_characters(text)?;
    Parser::new(text).run()
}

/// All 118 element symbols, for bracket atoms.
const ELEMENTS: [&str; 118] = [
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
    "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
    "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
    "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
    "Fl", "Mc", "Lv", "Ts", "Og",
];

/// Aromatic symbols only allowed inside brackets. OpenSMILES lists `se` and
/// `as`; the others are accepted by common toolkits (RDKit) and harmless here.
const AROMATIC_BRACKET_ONLY: [&str; 6] = ["se", "as", "te", "si", "ge", "sb"];

/// Aromatic organic-subset atoms (allowed both bare and in brackets).
const AROMATIC_ORGANIC: &[u8] = b"bcnops";

fn is_element(symbol: &str) -> bool {
    ELEMENTS.contains(&symbol)
}

fn error(position: usize, reason: impl Into<String>) -> SmilesError {
    SmilesError {
        position,
        reason: reason.into(),
    }
}

/// Rejects input that cannot be SMILES at all before parsing, so the parser
/// can work on ASCII bytes (byte index == character column).
fn check_characters(text: &str) -> Result<(), SmilesError> {
    if text.is_empty() {
        return Err(error(1, "empty input"));
    }
    let len = text.chars().count();
    if len > MAX_SMILES_CHARS {
        return Err(error(
            MAX_SMILES_CHARS + 1,
            format!("too long: {len} characters (limit {MAX_SMILES_CHARS})"),
        ));
    }
    for (i, c) in text.chars().enumerate() {
        let reason = if c.is_whitespace() {
            "whitespace inside SMILES (a SMILES cannot contain spaces)".to_string()
        } else if c.is_control() {
            "non-printable byte".to_string()
        } else if !c.is_ascii() {
            format!("non-ASCII character {c:?}")
        } else {
            continue;
        };
        return Err(error(i + 1, reason));
    }
    Ok(())
}

/// What the previous token was; decides which tokens may come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Start,
    /// An atom, a ring bond, or a closed branch: the "current atom" is set.
    Atom,
    OpenBranch,
    /// A bond symbol; `after_atom` is false for `(=` where a ring digit
    /// would have no atom directly before it.
    Bond {
        after_atom: bool,
    },
    Dot,
}

struct OpenRing {
    atom: usize,
    bond: Option<u8>,
    column: usize,
    label: String,
}

struct Parser<'a> {
    s: &'a [u8],
    /// Byte index of the next unread byte (== 0-based column; input is ASCII).
    i: usize,
    last: Last,
    /// The atom the next bond attaches to (None at the start and after `.`).
    current: Option<usize>,
    pending_bond: Option<u8>,
    /// Open branches: (column of '(', atom before it, atoms parsed so far).
    branches: Vec<(usize, Option<usize>)>,
    /// Open ring bonds indexed by ring number 0-99.
    rings: Vec<Option<OpenRing>>,
    /// Every bond as (smaller atom, larger atom), to catch duplicate bonds.
    bonds: std::collections::HashSet<(usize, usize)>,
    /// Union-find parents, one per atom, for counting fragments.
    parent: Vec<usize>,
    heavy_atoms: usize,
    ring_closures: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            s: text.as_bytes(),
            i: 0,
            last: Last::Start,
            current: None,
            pending_bond: None,
            branches: Vec::new(),
            rings: (0..100).map(|_| None).collect(),
            bonds: std::collections::HashSet::new(),
            parent: Vec::new(),
            heavy_atoms: 0,
            ring_closures: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.s.get(self.i + offset).copied()
    }

    /// 1-based column of the next unread byte.
    fn column(&self) -> usize {
        self.i + 1
    }

    fn end_column(&self) -> usize {
        self.s.len() + 1
    }

    fn run(mut self) -> Result<Smiles, SmilesError> {
        while let Some(c) = self.peek() {
            let col = self.column();
            match c {
                b'(' => self.open_branch(col)?,
                b')' => self.close_branch(col)?,
                b'.' => self.dot(col)?,
                b'-' | b'=' | b'#' | b'$' | b':' | b'/' | b'\\' => self.bond(c, col)?,
                b'0'..=b'9' => {
                    self.i += 1;
                    self.ring_bond(c - b'0', (c as char).to_string(), col)?;
                }
                b'%' => {
                    let (d1, d2) = (self.peek_at(1), self.peek_at(2));
                    match (d1, d2) {
                        (Some(a @ b'0'..=b'9'), Some(b @ b'0'..=b'9')) => {
                            self.i += 3;
                            let n = (a - b'0') * 10 + (b - b'0');
                            self.ring_bond(n, format!("%{}{}", a as char, b as char), col)?;
                        }
                        _ => {
                            return Err(error(col, "'%' must be followed by two digits, e.g. %10"))
                        }
                    }
                }
                b'[' => {
                    let heavy = self.bracket_atom()?;
                    self.add_atom(heavy);
                }
                b'*' => {
                    self.i += 1;
                    self.add_atom(true);
                }
                _ => {
                    self.organic_atom(c, col)?;
                    self.add_atom(true);
                }
            }
        }
        self.finish()
    }

    fn finish(self) -> Result<Smiles, SmilesError> {
        let end = self.end_column();
        match self.last {
            Last::Bond { .. } => return Err(error(end, "bond at end of input")),
            Last::Dot => return Err(error(end, "'.' at end of input")),
            _ => {}
        }
        if let Some((col, _)) = self.branches.last() {
            return Err(error(
                end,
                format!("unbalanced '(' (opened at character {col})"),
            ));
        }
        // Report the ring bond opened first: it is the one the user most
        // likely forgot to close.
        if let Some(open) = self.rings.iter().flatten().min_by_key(|r| r.column) {
            return Err(error(
                end,
                format!(
                    "unclosed ring bond {} (opened at character {})",
                    open.label, open.column
                ),
            ));
        }
        let mut parent = self.parent;
        let components = (0..parent.len())
            .filter(|&a| find(&mut parent, a) == a)
            .count();
        Ok(Smiles {
            // Input is ASCII (checked), so this round-trips exactly.
            text: String::from_utf8_lossy(self.s).into_owned(),
            atoms: self.heavy_atoms,
            ring_closures: self.ring_closures,
            components,
        })
    }

    fn add_atom(&mut self, heavy: bool) {
        let atom = self.parent.len();
        self.parent.push(atom);
        if heavy {
            self.heavy_atoms += 1;
        }
        if let Some(prev) = self.current {
            // A new atom can never duplicate an existing bond.
            self.bonds.insert((prev, atom));
            union(&mut self.parent, prev, atom);
        }
        self.pending_bond = None;
        self.current = Some(atom);
        self.last = Last::Atom;
    }

    fn open_branch(&mut self, col: usize) -> Result<(), SmilesError> {
        match self.last {
            Last::Atom => {}
            Last::Start => return Err(error(col, "branch '(' must follow an atom")),
            Last::OpenBranch => return Err(error(col, "branch cannot start with '('")),
            Last::Bond { .. } => {
                return Err(error(col, "bond before '(' (put it inside the branch)"))
            }
            Last::Dot => return Err(error(col, "branch '(' cannot follow '.'")),
        }
        self.branches.push((col, self.current));
        self.last = Last::OpenBranch;
        self.i += 1;
        Ok(())
    }

    fn close_branch(&mut self, col: usize) -> Result<(), SmilesError> {
        match self.last {
            Last::Atom => {}
            Last::OpenBranch => return Err(error(col, "empty branch '()'")),
            Last::Bond { .. } => return Err(error(col, "bond before ')'")),
            Last::Dot => return Err(error(col, "'.' before ')'")),
            Last::Start => return Err(error(col, "unbalanced ')'")),
        }
        let Some((_, anchor)) = self.branches.pop() else {
            return Err(error(col, "unbalanced ')'"));
        };
        // After a branch, bonds continue from the atom before the '('.
        self.current = anchor;
        self.last = Last::Atom;
        self.i += 1;
        Ok(())
    }

    fn dot(&mut self, col: usize) -> Result<(), SmilesError> {
        match self.last {
            // `C(.C)` is allowed by OpenSMILES: a disconnected part in a branch.
            Last::Atom | Last::OpenBranch => {}
            Last::Start => return Err(error(col, "'.' at start of input")),
            Last::Bond { .. } => return Err(error(col, "'.' right after a bond")),
            Last::Dot => return Err(error(col, "empty fragment between two '.'")),
        }
        self.current = None;
        self.last = Last::Dot;
        self.i += 1;
        Ok(())
    }

    fn bond(&mut self, c: u8, col: usize) -> Result<(), SmilesError> {
        let sym = c as char;
        let after_atom = match self.last {
            Last::Atom => true,
            Last::OpenBranch => false,
            Last::Start => return Err(error(col, format!("bond '{sym}' must follow an atom"))),
            Last::Bond { .. } => return Err(error(col, format!("two bonds in a row ('{sym}')"))),
            Last::Dot => return Err(error(col, format!("bond '{sym}' right after '.'"))),
        };
        self.pending_bond = Some(c);
        self.last = Last::Bond { after_atom };
        self.i += 1;
        Ok(())
    }

    fn ring_bond(&mut self, number: u8, label: String, col: usize) -> Result<(), SmilesError> {
        let bond = match self.last {
            Last::Atom => None,
            Last::Bond { after_atom: true } => self.pending_bond.take(),
            _ => return Err(error(col, format!("ring bond {label} must follow an atom"))),
        };
        let atom = match self.current {
            Some(atom) => atom,
            None => return Err(error(col, format!("ring bond {label} must follow an atom"))),
        };
        self.last = Last::Atom;
        let slot = usize::from(number);
        let Some(open) = self.rings.get_mut(slot).and_then(Option::take) else {
            if let Some(entry) = self.rings.get_mut(slot) {
                *entry = Some(OpenRing {
                    atom,
                    bond,
                    column: col,
                    label,
                });
            }
            return Ok(());
        };
        if open.atom == atom {
            return Err(error(
                col,
                format!("ring bond {label} would join an atom to itself"),
            ));
        }
        if let (Some(a), Some(b)) = (open.bond, bond) {
            if bond_order(a) != bond_order(b) {
                return Err(error(
                    col,
                    format!(
                        "conflicting bonds '{}' and '{}' on ring bond {label} (opened at character {})",
                        a as char, b as char, open.column
                    ),
                ));
            }
        }
        let key = (open.atom.min(atom), open.atom.max(atom));
        if !self.bonds.insert(key) {
            return Err(error(
                col,
                format!("ring bond {label} duplicates an existing bond between the same two atoms"),
            ));
        }
        union(&mut self.parent, open.atom, atom);
        self.ring_closures += 1;
        Ok(())
    }

    /// An atom outside brackets: organic subset only. Everything else gets a
    /// specific message, since this is where most typos land.
    fn organic_atom(&mut self, c: u8, col: usize) -> Result<(), SmilesError> {
        let next = self.peek_at(1).filter(u8::is_ascii_lowercase);
        match c {
            b'B' | b'C' | b'N' | b'O' | b'P' | b'S' | b'F' | b'I' => {
                if matches!((c, next), (b'B', Some(b'r')) | (b'C', Some(b'l'))) {
                    self.i += 2;
                    return Ok(());
                }
                // `Cn`, `Sc`, `Oc` are an atom followed by an aromatic atom;
                // any other lowercase letter cannot follow, so name the
                // two-letter symbol the user probably meant.
                if let Some(n) = next.filter(|n| !AROMATIC_ORGANIC.contains(n)) {
                    return Err(not_organic(col, &two_letters(c, n)));
                }
                self.i += 1;
                Ok(())
            }
            b'b' | b'c' | b'n' | b'o' | b'p' | b's' => {
                if let Some(n) = next {
                    let pair = two_letters(c, n);
                    if AROMATIC_BRACKET_ONLY.contains(&pair.as_str()) {
                        return Err(error(
                            col,
                            format!("aromatic '{pair}' must be written in brackets, e.g. [{pair}]"),
                        ));
                    }
                }
                self.i += 1;
                Ok(())
            }
            b'A'..=b'Z' => {
                let one = (c as char).to_string();
                let symbol = match next {
                    Some(n) if is_element(&two_letters(c, n)) || !is_element(&one) => {
                        two_letters(c, n)
                    }
                    _ => one,
                };
                Err(not_organic(col, &symbol))
            }
            b'a'..=b'z' => {
                if let Some(n) = next {
                    let pair = two_letters(c, n);
                    if AROMATIC_BRACKET_ONLY.contains(&pair.as_str()) {
                        return Err(error(
                            col,
                            format!("aromatic '{pair}' must be written in brackets, e.g. [{pair}]"),
                        ));
                    }
                }
                Err(error(col, format!("unexpected character '{}'", c as char)))
            }
            b']' => Err(error(col, "']' without a matching '['")),
            b'>' => Err(error(col, "reaction SMILES ('>') are not supported")),
            _ => Err(error(col, format!("unexpected character '{}'", c as char))),
        }
    }

    /// Parses `[isotope? symbol chiral? hcount? charge? class?]` starting at
    /// '['. Returns whether the atom is a heavy atom (not hydrogen).
    fn bracket_atom(&mut self) -> Result<bool, SmilesError> {
        let open_col = self.column();
        let unclosed = |p: &Self| {
            error(
                p.end_column(),
                format!("unclosed '[' (opened at character {open_col})"),
            )
        };
        self.i += 1;

        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i - start > 3 {
            return Err(error(start + 1, "isotope number has more than 3 digits"));
        }

        let col = self.column();
        let heavy = match self.peek() {
            None => return Err(unclosed(self)),
            Some(b'*') => {
                self.i += 1;
                true
            }
            Some(c @ b'A'..=b'Z') => {
                let next = self.peek_at(1).filter(u8::is_ascii_lowercase);
                let symbol = match next {
                    Some(n) => two_letters(c, n),
                    None => (c as char).to_string(),
                };
                if !is_element(&symbol) {
                    return Err(error(col, format!("unknown element '{symbol}'")));
                }
                self.i += symbol.len();
                symbol != "H"
            }
            Some(c @ b'a'..=b'z') => {
                let next = self.peek_at(1).filter(u8::is_ascii_lowercase);
                let symbol = match next {
                    Some(n) => two_letters(c, n),
                    None => (c as char).to_string(),
                };
                let known = AROMATIC_BRACKET_ONLY.contains(&symbol.as_str())
                    || (symbol.len() == 1 && AROMATIC_ORGANIC.contains(&c));
                if !known {
                    return Err(error(col, format!("unknown aromatic element '{symbol}'")));
                }
                self.i += symbol.len();
                true
            }
            Some(b']') => return Err(error(col, "empty bracket atom '[]'")),
            Some(c) => {
                return Err(error(
                    col,
                    format!(
                        "expected an element symbol in brackets, found '{}'",
                        c as char
                    ),
                ))
            }
        };

        if self.peek() == Some(b'@') {
            self.chirality()?;
        }

        if self.peek() == Some(b'H') {
            self.i += 1;
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
        }

        if let Some(sign @ (b'+' | b'-')) = self.peek() {
            let col = self.column();
            self.i += 1;
            if self.peek() == Some(sign) {
                self.i += 1; // `++` / `--`
            } else {
                let digits = self.read_digits(2);
                if digits.parse::<u32>().is_ok_and(|n| n > 15) {
                    return Err(error(
                        col,
                        format!("charge {}{digits} out of range (at most 15)", sign as char),
                    ));
                }
            }
        }

        if self.peek() == Some(b':') {
            let col = self.column();
            self.i += 1;
            if self.read_digits(9).is_empty() {
                return Err(error(col, "atom class ':' must be followed by a number"));
            }
        }

        match self.peek() {
            Some(b']') => {
                self.i += 1;
                Ok(heavy)
            }
            None => Err(unclosed(self)),
            Some(c) => Err(error(
                self.column(),
                format!("unexpected '{}' in bracket atom", c as char),
            )),
        }
    }

    /// `@`, `@@`, or `@` + class (TH AL SP TB OH) + number in its range.
    fn chirality(&mut self) -> Result<(), SmilesError> {
        let col = self.column();
        self.i += 1;
        if self.peek() == Some(b'@') {
            self.i += 1;
            return Ok(());
        }
        let (Some(a), Some(b)) = (self.peek(), self.peek_at(1)) else {
            return Ok(());
        };
        let max = match [a, b] {
            [b'T', b'H'] | [b'A', b'L'] => 2,
            [b'S', b'P'] => 3,
            [b'T', b'B'] => 20,
            [b'O', b'H'] => 30,
            // A plain `@` followed by H count, charge, class or ']'.
            _ => return Ok(()),
        };
        let class = two_letters(a, b);
        self.i += 2;
        let digits = self.read_digits(2);
        match digits.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(()),
            _ => Err(error(
                col,
                format!("chirality '@{class}{digits}' needs a number from 1 to {max}"),
            )),
        }
    }

    /// Reads up to `max` ASCII digits and returns them.
    fn read_digits(&mut self, max: usize) -> String {
        let mut out = String::new();
        while out.len() < max {
            match self.peek() {
                Some(c) if c.is_ascii_digit() => {
                    out.push(c as char);
                    self.i += 1;
                }
                _ => break,
            }
        }
        out
    }
}

fn two_letters(a: u8, b: u8) -> String {
    [a as char, b as char].iter().collect()
}

fn not_organic(col: usize, symbol: &str) -> SmilesError {
    if is_element(symbol) {
        error(
            col,
            format!("element '{symbol}' must be written in brackets, e.g. [{symbol}]"),
        )
    } else {
        error(col, format!("unknown element '{symbol}'"))
    }
}

fn bond_order(c: u8) -> u8 {
    match c {
        b'=' => 2,
        b'#' => 3,
        b'$' => 4,
        b':' => 5,
        _ => 1, // '-', '/', '\'
    }
}

fn find(parent: &mut [usize], mut a: usize) -> usize {
    while parent[a] != a {
        parent[a] = parent[parent[a]];
        a = parent[a];
    }
    a
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    parent[ra] = rb;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Smiles {
        parse_smiles(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn err(s: &str) -> SmilesError {
        match parse_smiles(s) {
            Ok(m) => panic!("{s:?} should fail, parsed as {m:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn element_table_is_complete() {
        assert_eq!(ELEMENTS.len(), 118);
        let mut sorted = ELEMENTS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 118);
    }

    #[test]
    fn accepts_real_world_smiles() {
        let cases = [
            "CC(=O)Oc1ccccc1C(=O)O",
            "[NH4+].[Cl-]",
            "[13CH4]",
            "C[C@@H](N)C(=O)O",
            "F/C=C/F",
            "F/C=C\\F",
            "c1ccc2c(c1)[nH]c1ccccc12",
            "[O-][N+](=O)c1ccccc1",
            "C%10CC%10",
            "Cn1cnc2c1c(=O)n(C)c(=O)n2C", // caffeine: `Cn` is C + aromatic n
            "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
            "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",
            "[2H]C([2H])([2H])Cl",
            "[Na+].[O-]C(=O)C",
            "[Fe+2]",
            "[Fe++]",
            "[Cu-3]",
            "[se]1cccc1",
            "c1cc[se]c1",
            "[as]1cccc1",
            "[C@TH1](F)(Cl)(Br)I",
            "[Co@OH25](Cl)(Cl)(Cl)(Cl)(Cl)Cl",
            "F[S@SP3](F)(F)F",
            "S[As@TB20](F)(Cl)(Br)N",
            "[CH3:1][OH:2]",
            "*C(*)=O",
            "[*]CC",
            "C1CC(C)1",
            "C=1CC=1",
            "C=1CC1",
            "C1CC=1",
            "C/1CC\\1",
            "C1.C1", // one fragment joined across a dot
            "C(.C)C",
            "C#N",
            "C$C",
            "c1:c:c:c:c:c1",
            "C(C)1CC1",
            "[H]",
            "[H][H]",
            "Sc1ccccc1",
            "ClCCBr",
            "OCCc1c(C)[n+](cs1)Cc1cnc(C)nc1N",
            // Imatinib and a larger macrocycle-ish drug.
            "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
            "CC[C@H](C)[C@@H]1NC(=O)[C@H](Cc2ccc(O)cc2)NC(=O)[C@@H](N)CSSC[C@@H](C(=O)N2CCC[C@H]2C(=O)N[C@@H](CC(C)C)C(=O)NCC(N)=O)NC(=O)[C@H](CC(N)=O)NC(=O)[C@H](CCC(N)=O)NC1=O",
            "  CCO  ",
            "[C-]#[O+]",
            "c1cc[nH+]cc1",
            "C1=CC=CC=C1",
            "c1ccccc1-c1ccccc1",
            "B(O)O",
            "[Pt+2]",
            "[O-2]",
            "[Ti+4]",
            "[U]",
            "[Si](C)(C)C",
            "N[C@@]12CCC[C@H]1C2",
            "OC(=O)[C@@H]1CCCN1",
            "C(/F)=C/F",
            "[2H]/C=C/[2H]",
            "[13C@H](F)(Cl)Br",
            "[CH2-]C",
            "C=%10CC%10",
            "C1CCC2(CC1)CC2",
            "C(C)(C)(C)C",
            "Cc1cccs1",
            "COc1ccc2[nH]cc(CCN)c2c1",
        ];
        for s in cases {
            ok(s);
        }
    }

    #[test]
    fn counts() {
        let m = ok("CC(=O)Oc1ccccc1C(=O)O");
        assert_eq!(
            (m.atom_count(), m.ring_closures(), m.components()),
            (13, 1, 1)
        );
        let m = ok("[NH4+].[Cl-]");
        assert_eq!(
            (m.atom_count(), m.ring_closures(), m.components()),
            (2, 0, 2)
        );
        let m = ok("c1ccc2c(c1)[nH]c1ccccc12");
        assert_eq!(
            (m.atom_count(), m.ring_closures(), m.components()),
            (13, 3, 1)
        );
        let m = ok("[2H]C([2H])([2H])Cl");
        assert_eq!(m.atom_count(), 2);
        assert_eq!(ok("C1.C1").components(), 1);
        assert_eq!(ok("C.C.C").components(), 3);
        assert_eq!(ok("C(.C)C").components(), 2);
        assert_eq!(ok("  CCO ").as_str(), "CCO");
        assert_eq!(ok("CCO").to_string(), "CCO");
    }

    #[test]
    fn rejects_with_position_and_reason() {
        let cases: &[(&str, usize, &str)] = &[
            ("C1CC", 5, "unclosed ring bond 1 (opened at character 2)"),
            ("Xx(", 1, "unknown element 'Xx'"),
            ("CC(", 4, "unbalanced '(' (opened at character 3)"),
            ("C(C", 4, "unbalanced '(' (opened at character 2)"),
            ("C)C", 2, "unbalanced ')'"),
            ("C==C", 3, "two bonds in a row ('=')"),
            ("()", 1, "branch '(' must follow an atom"),
            ("C()", 3, "empty branch '()'"),
            ("CC=", 4, "bond at end of input"),
            ("\u{0}\u{1}abc", 1, "non-printable byte"),
            ("", 1, "empty input"),
            ("   ", 1, "empty input"),
            ("C11", 3, "ring bond 1 would join an atom to itself"),
            (
                "C=1CC#1",
                7,
                "conflicting bonds '=' and '#' on ring bond 1 (opened at character 3)",
            ),
            (
                "C1C1",
                4,
                "ring bond 1 duplicates an existing bond between the same two atoms",
            ),
            ("C%1C", 2, "'%' must be followed by two digits, e.g. %10"),
            (
                "C%10CC",
                7,
                "unclosed ring bond %10 (opened at character 2)",
            ),
            ("[Xx]", 2, "unknown element 'Xx'"),
            ("[X]", 2, "unknown element 'X'"),
            (
                "NaCl",
                1,
                "element 'Na' must be written in brackets, e.g. [Na]",
            ),
            (
                "CCSi",
                3,
                "element 'Si' must be written in brackets, e.g. [Si]",
            ),
            (
                "c1cc[se]c1se",
                11,
                "aromatic 'se' must be written in brackets, e.g. [se]",
            ),
            ("[CH4", 5, "unclosed '[' (opened at character 1)"),
            ("[]", 2, "empty bracket atom '[]'"),
            ("[C@TH3]", 3, "chirality '@TH3' needs a number from 1 to 2"),
            ("[C@OH]", 3, "chirality '@OH' needs a number from 1 to 30"),
            ("[C+16]", 3, "charge +16 out of range (at most 15)"),
            ("[CH3:]", 5, "atom class ':' must be followed by a number"),
            ("[C2]", 3, "unexpected '2' in bracket atom"),
            ("[1234C]", 2, "isotope number has more than 3 digits"),
            (
                "C C",
                2,
                "whitespace inside SMILES (a SMILES cannot contain spaces)",
            ),
            ("CCé", 3, "non-ASCII character 'é'"),
            ("=C", 1, "bond '=' must follow an atom"),
            (".C", 1, "'.' at start of input"),
            ("C.", 3, "'.' at end of input"),
            ("C..C", 3, "empty fragment between two '.'"),
            ("C=(C)", 3, "bond before '(' (put it inside the branch)"),
            ("C(=)", 4, "bond before ')'"),
            ("C(1)", 3, "ring bond 1 must follow an atom"),
            ("1CC1", 1, "ring bond 1 must follow an atom"),
            ("C]", 2, "']' without a matching '['"),
            ("CC>CO", 3, "reaction SMILES ('>') are not supported"),
            ("H", 1, "element 'H' must be written in brackets, e.g. [H]"),
            ("[sn]", 2, "unknown aromatic element 'sn'"),
            ("Cx", 1, "unknown element 'Cx'"),
        ];
        for &(s, pos, reason) in cases {
            let e = err(s);
            assert_eq!(
                (e.position, e.reason.as_str()),
                (pos, reason),
                "input {s:?}"
            );
        }
    }

    #[test]
    fn too_long() {
        let long = "C".repeat(612);
        let e = err(&long);
        assert_eq!(e.reason, "too long: 612 characters (limit 500)");
        assert_eq!(
            e.to_string(),
            "invalid SMILES at character 501: too long: 612 characters (limit 500)"
        );
        ok(&"C".repeat(MAX_SMILES_CHARS));
    }

    /// Tiny deterministic generator so tests need no `rand` dependency.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn check_no_panic(s: &str) {
        let trimmed_len = s.trim().chars().count();
        if let Err(e) = parse_smiles(s) {
            assert!(
                e.position >= 1 && e.position <= trimmed_len.max(MAX_SMILES_CHARS) + 1,
                "{s:?}: {e}"
            );
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn never_panics_on_short_ascii() {
        // Every string of up to 3 printable ASCII characters (plus a few
        // control bytes): 100^3 = 1M parses.
        let alphabet: Vec<char> = (0x20u8..0x7f)
            .map(char::from)
            .chain(['\0', '\t', '\n', '\u{7f}', 'é'])
            .collect();
        let mut buf = String::new();
        for &a in &alphabet {
            check_no_panic(&a.to_string());
            for &b in &alphabet {
                buf.clear();
                buf.extend([a, b]);
                check_no_panic(&buf);
                for &c in &alphabet {
                    buf.clear();
                    buf.extend([a, b, c]);
                    check_no_panic(&buf);
                }
            }
        }
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut rng = Lcg(42);
        let smiles_chars = b"CNOSPFIBrlcnospb()[]=#$:/\\.%0123456789@+-H*";
        for _ in 0..50_000 {
            let len = rng.below(30);
            let s: String = (0..len)
                .map(|_| smiles_chars[rng.below(smiles_chars.len())] as char)
                .collect();
            check_no_panic(&s);
        }
        for _ in 0..5_000 {
            let len = rng.below(600);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check_no_panic(&String::from_utf8_lossy(&bytes));
        }
        // Mutations of a valid drug SMILES: deletions, insertions, swaps.
        let base: Vec<char> =
            "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1[C@@H]([13CH3:2])%12CC%12"
                .chars()
                .collect();
        for _ in 0..20_000 {
            let mut s = base.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(s.len());
                match rng.below(3) {
                    0 => {
                        s.remove(at);
                    }
                    1 => s.insert(at, smiles_chars[rng.below(smiles_chars.len())] as char),
                    _ => s[at] = smiles_chars[rng.below(smiles_chars.len())] as char,
                }
            }
            check_no_panic(&s.iter().collect::<String>());
        }
    }
}
