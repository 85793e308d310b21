//! The results: a sortable table, a chart of the predictions (hand-written SVG), CSV download
//! and copy to the clipboard (TSV).

use js_sys::Array;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Blob, BlobPropertyBag, HtmlAnchorElement, Url};

use super::super::protocol::csv_field;

/// One input of a run and its outcome; neither `value` nor `error` while it is pending.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Row {
    /// Position in the input (0-based).
    pub n: usize,
    pub input: String,
    /// Text after the SMILES on its line (a name), if any.
    #[serde(default)]
    pub name: String,
    pub value: Option<f64>,
    pub error: Option<String>,
}

impl Row {
    pub fn status(&self) -> &str {
        match (&self.value, &self.error) {
            (Some(_), _) => "ok",
            (None, Some(_)) => "error",
            (None, None) => "pending",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Order,
    Input,
    Value,
    Status,
}

impl SortKey {
    pub fn id(self) -> &'static str {
        match self {
            SortKey::Order => "order",
            SortKey::Input => "input",
            SortKey::Value => "value",
            SortKey::Status => "status",
        }
    }
}

/// `rows` in the table's order. Missing values sort last either way.
pub fn sorted(rows: &[Row], key: SortKey, ascending: bool) -> Vec<Row> {
    let mut out = rows.to_vec();
    let dir = |o: std::cmp::Ordering| if ascending { o } else { o.reverse() };
    match key {
        SortKey::Order => out.sort_by(|a, b| dir(a.n.cmp(&b.n))),
        SortKey::Input => out.sort_by(|a, b| dir(a.input.cmp(&b.input)).then(a.n.cmp(&b.n))),
        SortKey::Value => out.sort_by(|a, b| match (a.value, b.value) {
            (Some(x), Some(y)) => dir(x.total_cmp(&y)).then(a.n.cmp(&b.n)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.n.cmp(&b.n),
        }),
        SortKey::Status => out.sort_by(|a, b| {
            dir((a.status(), a.error.as_deref()).cmp(&(b.status(), b.error.as_deref()))).then(a.n.cmp(&b.n))
        }),
    }
    out
}

fn has_names(rows: &[Row]) -> bool {
    rows.iter().any(|r| !r.name.is_empty())
}

/// `input,prediction,error` like the CLI (plus `name` after the input when lines had names).
pub fn csv(rows: &[Row]) -> String {
    let names = has_names(rows);
    let mut s = String::from(if names { "input,name,prediction,error\n" } else { "input,prediction,error\n" });
    for r in rows {
        s.push_str(&csv_field(&r.input));
        if names {
            s.push(',');
            s.push_str(&csv_field(&r.name));
        }
        s.push_str(&format!(
            ",{},{}\n",
            r.value.map(|v| v.to_string()).unwrap_or_default(),
            csv_field(r.error.as_deref().unwrap_or(""))
        ));
    }
    s
}

/// Tab-separated, for pasting into a spreadsheet: the same columns as the CSV.
pub fn tsv(rows: &[Row]) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let names = has_names(rows);
    let mut s = String::from(if names { "input\tname\tprediction\terror\n" } else { "input\tprediction\terror\n" });
    for r in rows {
        s.push_str(&clean(&r.input));
        if names {
            s.push('\t');
            s.push_str(&clean(&r.name));
        }
        s.push_str(&format!(
            "\t{}\t{}\n",
            r.value.map(|v| v.to_string()).unwrap_or_default(),
            clean(r.error.as_deref().unwrap_or(""))
        ));
    }
    s
}

pub fn download_csv(name: &str, rows: &[Row]) {
    let bag = BlobPropertyBag::new();
    bag.set_type("text/csv");
    let Ok(blob) = Blob::new_with_str_sequence_and_options(&Array::of1(&JsValue::from_str(&csv(rows))), &bag) else {
        return;
    };
    let Ok(url) = Url::create_object_url_with_blob(&blob) else { return };
    if let Ok(a) = document().create_element("a").map(|a| a.unchecked_into::<HtmlAnchorElement>()) {
        a.set_href(&url);
        a.set_download(&format!("tagllm-{name}.csv"));
        a.click();
    }
    let _ = Url::revoke_object_url(&url);
}

/// Copies `text` to the clipboard; `done` gets whether it worked.
pub fn copy_text(text: String, done: impl FnOnce(Result<(), String>) + 'static) {
    spawn_local(async move {
        let clipboard = window().navigator().clipboard();
        let r = match JsFuture::from(clipboard.write_text(&text)).await {
            Ok(_) => Ok(()),
            // No clipboard permission (or an old browser): the selection-and-copy command.
            Err(e) => copy_with_exec_command(&text).ok_or_else(|| format!("{e:?}")),
        };
        done(r);
    });
}

fn copy_with_exec_command(text: &str) -> Option<()> {
    let doc = document();
    let area: web_sys::HtmlTextAreaElement = doc.create_element("textarea").ok()?.unchecked_into();
    area.set_value(text);
    doc.body()?.append_child(&area).ok()?;
    area.select();
    let exec = js_sys::Reflect::get(&doc, &"execCommand".into()).ok()?.dyn_into::<js_sys::Function>().ok()?;
    let ok = exec.call1(&doc, &"copy".into()).ok()?.is_truthy();
    area.remove();
    ok.then_some(())
}

/// "Nice" axis ticks covering [lo, hi].
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= n as f64).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// At most this many marks are drawn (evenly spaced ranks beyond it).
const MAX_MARKS: usize = 1000;

/// The predictions sorted from low to high, one dot per value (a rank plot): the spread, the
/// extremes and the gaps are visible at a glance; hover a dot for its input.
#[component]
pub fn Chart(rows: Signal<Vec<Row>>, target: Signal<String>) -> impl IntoView {
    let (w, h) = (640.0f64, 180.0f64);
    let (left, right, top, bottom) = (52.0, 12.0, 12.0, 34.0);
    move || {
        let mut pts: Vec<(f64, String)> = rows.get().into_iter().filter_map(|r| r.value.map(|v| (v, r.input))).collect();
        if pts.is_empty() {
            return None;
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = pts.len();
        let shown: Vec<(usize, (f64, String))> = if n > MAX_MARKS {
            (0..MAX_MARKS).map(|i| i * (n - 1) / (MAX_MARKS - 1)).map(|i| (i, pts[i].clone())).collect()
        } else {
            pts.iter().cloned().enumerate().collect()
        };
        let (vmin, vmax) = (pts[0].0, pts[n - 1].0);
        let pad = ((vmax - vmin) * 0.08).max(if vmax == vmin { vmax.abs().max(1.0) * 0.05 } else { 0.0 });
        let (lo, hi) = (vmin - pad, vmax + pad);
        // Dots keep clear of the axes.
        let inset = 14.0;
        let x = move |i: usize| left + inset + (w - left - right - 2.0 * inset) * if n == 1 { 0.5 } else { i as f64 / (n - 1) as f64 };
        let y = move |v: f64| top + (h - top - bottom) * (1.0 - (v - lo) / (hi - lo));
        let mean = pts.iter().map(|p| p.0).sum::<f64>() / n as f64;
        let r = if n <= 30 { 4.5 } else if n <= 200 { 3.0 } else { 1.8 };
        let label = target.get();
        let ylabel = if label.is_empty() { "prediction".to_string() } else { label };
        Some(view! {
            <figure class="chart">
                <svg data-testid="chart" viewBox=format!("0 0 {w} {h}") role="img"
                    aria-label=format!("{n} predictions sorted from lowest to highest")>
                    {ticks(lo, hi, 4).into_iter().map(|t| view! {
                        <line class="grid" x1=left x2=w - right y1=y(t) y2=y(t)></line>
                        <text class="tick" x=left - 6.0 y=y(t) + 4.0 text-anchor="end">{fmt_tick(t)}</text>
                    }).collect_view()}
                    <line class="axis" x1=left x2=left y1=top y2=h - bottom></line>
                    <line class="axis" x1=left x2=w - right y1=h - bottom y2=h - bottom></line>
                    <line class="mean" x1=left x2=w - right y1=y(mean) y2=y(mean)>
                        <title>{format!("mean {mean:.4}")}</title>
                    </line>
                    {shown.into_iter().map(|(i, (v, input))| view! {
                        <circle class="mark" cx=x(i) cy=y(v) r=r data-value=v.to_string()>
                            <title>{format!("{input}: {v:.4}")}</title>
                        </circle>
                    }).collect_view()}
                    <text class="label" x=(left + w - right) / 2.0 y=h - 8.0 text-anchor="middle">
                        {format!("{n} predictions, sorted from lowest to highest (dashed: mean {mean:.3})")}
                    </text>
                    <text class="label" x=12.0 y=(top + h - bottom) / 2.0 text-anchor="middle"
                        transform=format!("rotate(-90 12 {})", (top + h - bottom) / 2.0)>{ylabel}</text>
                </svg>
                {(n > MAX_MARKS).then(|| view! { <figcaption class="small">{format!("{MAX_MARKS} of {n} ranks drawn")}</figcaption> })}
            </figure>
        })
    }
}
