//! Labelled examples for function-tag training, read from CSV splits.
//!
//! A split may name its inputs directly (`smiles`, `sequence` columns) or by id: a split with
//! `ligand_id` / `protein_id` columns and `ligands.csv` / `proteins.csv` beside it (the compact
//! committed form of DAVIS) is joined on the fly.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::input::{parse_csv, Table};

/// One labelled item: one raw input per template slot, and the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub inputs: Vec<String>,
    pub target: f64,
}

fn read_table(path: &Path) -> Result<Table> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    parse_csv(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
}

/// A column of `table`, or the same values looked up through an id column and a side table.
fn column_values(table: &Table, path: &Path, name: &str) -> Result<Vec<String>> {
    if let Ok(i) = table.column(name) {
        return Ok(table.rows.iter().map(|r| r.get(i).unwrap_or("").to_string()).collect());
    }
    let (id_col, side, value_col) = match name {
        "smiles" => ("ligand_id", "ligands.csv", "smiles"),
        "sequence" => ("protein_id", "proteins.csv", "sequence"),
        _ => return Err(Error::Usage(format!("{}: no column `{name}`", path.display()))),
    };
    let id = table
        .column(id_col)
        .map_err(|_| Error::Usage(format!("{}: no column `{name}` nor `{id_col}`", path.display())))?;
    let side_path = path.with_file_name(side);
    let side_table = read_table(&side_path)?;
    let (k, v) = (
        side_table.column(id_col).map_err(|e| Error::Usage(e.to_string()))?,
        side_table.column(value_col).map_err(|e| Error::Usage(e.to_string()))?,
    );
    let lookup: HashMap<&str, &str> = side_table
        .rows
        .iter()
        .filter_map(|r| Some((r.get(k)?, r.get(v)?)))
        .collect();
    Ok(table
        .rows
        .iter()
        .map(|r| lookup.get(r.get(id).unwrap_or("")).copied().unwrap_or("").to_string())
        .collect())
}

/// Reads `path`, taking the inputs from `input_cols` (one per template slot, in order) and
/// the target from `target_col`. Rows whose target is not a number are skipped and counted.
pub fn load_examples(path: &Path, input_cols: &[String], target_col: &str) -> Result<(Vec<Example>, usize)> {
    let table = read_table(path)?;
    let columns = input_cols
        .iter()
        .map(|c| column_values(&table, path, c))
        .collect::<Result<Vec<_>>>()?;
    let t = table
        .column(target_col)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let mut out = Vec::with_capacity(table.rows.len());
    let mut skipped = 0;
    for (i, row) in table.rows.iter().enumerate() {
        match row.get(t).map(str::trim).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite()) {
            Some(target) => out.push(Example { inputs: columns.iter().map(|c| c[i].clone()).collect(), target }),
            None => skipped += 1,
        }
    }
    Ok((out, skipped))
}
