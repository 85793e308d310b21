//! The page's persistent state in `localStorage`: the inputs, the chosen tag and the last results
//! (saved after every sub-batch, so a reload during a run keeps what was computed).

use leptos::prelude::window;
use serde::{Deserialize, Serialize};

use super::results::Row;

pub const INPUT: &str = "tagllm.input";
pub const PROTEIN: &str = "tagllm.protein";
pub const TAG: &str = "tagllm.tag";
pub const RESULTS: &str = "tagllm.results";
pub const BACKEND: &str = "tagllm.backend";

/// The results table as saved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedResults {
    pub tag: String,
    pub target: String,
    pub info: String,
    pub rows: Vec<Row>,
    /// The run was still going when this was saved.
    pub running: bool,
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

pub fn get(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

pub fn set(key: &str, value: &str) {
    if let Some(s) = storage() {
        if s.set_item(key, value).is_err() {
            // Over the quota (a very long list): keep nothing rather than something stale.
            let _ = s.remove_item(key);
            web_sys::console::warn_1(&format!("could not save {key} ({} bytes) in localStorage", value.len()).into());
        }
    }
}

pub fn save_results(r: &SavedResults) {
    if let Ok(text) = serde_json::to_string(r) {
        set(RESULTS, &text);
    }
}

/// The saved results; rows of a run interrupted by a reload say so.
pub fn load_results() -> Option<SavedResults> {
    let mut r: SavedResults = serde_json::from_str(&get(RESULTS)?).ok()?;
    if r.running {
        let done = r.rows.iter().filter(|x| x.value.is_some() || x.error.is_some()).count();
        for row in r.rows.iter_mut().filter(|x| x.value.is_none() && x.error.is_none()) {
            row.error = Some("not computed: the page was reloaded during the run".into());
        }
        r.info = format!("Interrupted by a reload: {done} of {} done; the rest can be run again.", r.rows.len());
        r.running = false;
    }
    Some(r)
}
