//! User inputs: SMILES, protein / FASTA, CSV / TSV tables and input files split into records,
//! each record then validated as `predict` does. The first byte picks the file name (format by
//! extension), the requested column and the input kind; the rest is the text (lossy UTF-8, as
//! a browser decodes a dropped file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagllm::input::{
    detect_format, parse_csv, parse_delimited, parse_fasta, parse_protein, parse_smiles,
    read_records, InputKind,
};
use tagllm::predict::render_input;
use tagllm::tags::InputType;

const NAMES: [Option<&str>; 8] = [
    None,
    Some("in.smi"),
    Some("in.txt"),
    Some("in.csv"),
    Some("in.tsv"),
    Some("in.fasta"),
    Some("noext"),
    Some("dir.d/IN.FA"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let text = &*text;

    match parse_smiles(text) {
        Ok(smiles) => {
            let _ = (smiles.atom_count(), smiles.ring_closures(), smiles.components());
            let again = parse_smiles(smiles.as_str()).expect("a valid SMILES parses again");
            assert_eq!(again.as_str(), smiles.as_str());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match parse_protein(text) {
        Ok(protein) => {
            let _ = (protein.len(), protein.spaced(), protein.to_string());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    for (_, result) in parse_fasta(text) {
        if let Err(e) = result {
            let _ = e.to_string();
        }
    }
    for table in [parse_csv(text), parse_delimited(text, '\t')] {
        match table {
            Ok(table) => {
                let _ = table.column("smiles").map_err(|e| e.to_string());
                for row in &table.rows {
                    let _ = row.get(0);
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }

    let name = NAMES[usize::from(selector & 7)];
    let column = match (selector >> 3) & 3 {
        0 => None,
        1 => Some("smiles"),
        2 => Some("Sequence"),
        _ => Some("missing"),
    };
    let (kind, input) = if selector & 0x20 == 0 {
        (InputKind::Smiles, InputType::Smiles)
    } else {
        (InputKind::Protein, InputType::Protein)
    };
    let _ = detect_format(text, name, column);
    match read_records(text, name, column, kind) {
        Ok(records) => {
            for record in records {
                let _ = render_input(input, &record.text);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
