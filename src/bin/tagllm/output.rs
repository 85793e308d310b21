//! Writing results: CSV with proper quoting, JSON, and progress bars that only draw on a
//! terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// Quotes a CSV field when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
pub fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}} < {{eta_precise}}, {{per_sec}}]"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// A number as it is printed: enough digits for any property here, no noise.
pub fn number(v: f64) -> String {
    format!("{v:.4}")
}
