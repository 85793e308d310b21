//! The tag inspector (for teaching): a tag's model card (`tags/NAME.md`, rendered) or, without
//! one, its metadata; and the vocabulary tokens nearest to each of its vectors (computed by the
//! worker).

use leptos::prelude::*;

use super::super::protocol::{TagInfo, ToWorker};
use super::{fetch_text, markdown, post, App};

/// Nearest tokens shown per vector.
pub const NEAREST_K: usize = 6;

/// What the inspector shows about the nearest tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Nearest {
    None,
    Loading(String, bool),
    Done { tag: String, centred: bool, vectors: Vec<Vec<(String, f32)>>, ms: f64 },
    Failed { tag: String, error: String },
}

impl Nearest {
    /// The tag and mode shown or asked for.
    fn key(&self) -> Option<(&str, bool)> {
        match self {
            Nearest::None | Nearest::Failed { .. } => None,
            Nearest::Loading(t, c) | Nearest::Done { tag: t, centred: c, .. } => Some((t, *c)),
        }
    }
}

/// A token as text with its spaces and line breaks visible.
fn visible(tok: &str) -> String {
    tok.replace(' ', "␣").replace('\n', "⏎").replace('\t', "⇥")
}

fn metadata_view(t: &TagInfo) -> impl IntoView {
    let mut rows: Vec<(&'static str, String)> = vec![
        ("kind", if t.function { "function tag (predicts)".into() } else { format!("domain tag (marks {})", t.input.clone().unwrap_or_default()) }),
        ("description", t.description.clone()),
    ];
    if !t.target.is_empty() {
        rows.push(("predicts", t.target.clone()));
    }
    rows.push(("vectors", format!("p = {}", t.p)));
    if !t.template.is_empty() {
        rows.push(("template", t.template.clone()));
    }
    if !t.requires.is_empty() {
        rows.push(("domain tags", t.requires.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(", ")));
    }
    rows.push(("test metrics", if t.metrics.is_empty() { "none recorded".into() } else { t.metrics.clone() }));
    for (k, v) in &t.provenance {
        rows.push(("training", format!("{k}: {v}")));
    }
    rows.push(("version", format!("format {}, vectors sha256 {}", t.format_version, t.vectors_sha256)));
    view! {
        <div data-testid="tag-card" data-source="metadata">
            <p class="small">"No model card for this tag; its metadata:"</p>
            <table class="meta">
                {rows.into_iter().map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> }).collect_view()}
            </table>
        </div>
    }
}

#[component]
pub fn Inspector(app: App) -> impl IntoView {
    // Ask the worker for the nearest tokens when the panel is open and the tag changes.
    Effect::new(move |_| {
        let tag = app.inspect_tag.get();
        let centred = app.centred.get();
        if !app.inspector_open.get() || app.state.get() != "ready" || tag.is_empty() {
            return;
        }
        if app.nearest.with_untracked(|n| n.key() == Some((tag.as_str(), centred))) {
            return;
        }
        app.nearest.set(Nearest::Loading(tag.clone(), centred));
        post(&ToWorker::Inspect { tag, k: NEAREST_K, centred }, None);
    });
    // The card, when the tag folder has one.
    Effect::new(move |_| {
        let tag = app.inspect_tag.get();
        let file = format!("{tag}.md");
        if !app.inspector_open.get() || !app.cards.get().contains(&file) {
            return;
        }
        if app.card.with_untracked(|c| c.as_ref().is_some_and(|(t, _)| *t == tag)) {
            return;
        }
        wasm_bindgen_futures::spawn_local(async move {
            match fetch_text(&format!("tags/{file}")).await {
                Ok(md) => app.card.set(Some((tag, markdown::to_html(&md)))),
                Err(e) => web_sys::console::warn_1(&e.into()),
            }
        });
    });
    let info = move || {
        let name = app.inspect_tag.get();
        app.tags.get().into_iter().find(|t| t.name == name)
    };

    view! {
        <details class="card" data-testid="inspector"
            on:toggle=move |ev| {
                let open = event_target::<web_sys::HtmlDetailsElement>(&ev).open();
                app.inspector_open.set(open);
            }>
            <summary><h2 class="inline">"Tag inspector"</h2>
                <span class="small">" — what a tag predicts, how it was tested, and which words its vectors resemble"</span></summary>
            <div class="row">
                <label class="label" for="inspect-tag">"Tag"</label>
                <select id="inspect-tag" data-testid="inspect-tag"
                    prop:value=move || app.inspect_tag.get()
                    on:change=move |ev| app.inspect_tag.set(event_target_value(&ev))>
                    {move || app.tags.get().into_iter().map(|t| {
                        let kind = if t.function { "function" } else { "domain" };
                        let selected = t.name == app.inspect_tag.get_untracked();
                        view! { <option value=t.name.clone() selected=selected>{format!("<{}> ({kind})", t.name)}</option> }
                    }).collect_view()}
                </select>
            </div>
            {move || {
                let name = app.inspect_tag.get();
                match app.card.get().filter(|(t, _)| *t == name) {
                    Some((_, html)) => view! { <div class="md" data-testid="tag-card" data-source="card" inner_html=html></div> }.into_any(),
                    None => info().map(|t| metadata_view(&t)).into_any(),
                }
            }}
            <h3>"Nearest vocabulary tokens"</h3>
            <p class="small">"For each of the tag's vectors, the vocabulary tokens whose embeddings point most nearly the same way (cosine similarity). Tag vectors are trained freely and need not sit near any word. Every tag starts on the direction of the average token embedding, which all token embeddings share too, so plain cosines of different vectors look alike; with that direction removed from both sides they show what sets each vector apart."</p>
            <label class="small check"><input type="checkbox" data-testid="nearest-centred"
                prop:checked=move || app.centred.get()
                on:change=move |ev| app.centred.set(event_target_checked(&ev)) />
                " remove the shared direction (the average token embedding) first"</label>
            {move || match app.nearest.get() {
                Nearest::None => view! { <p class="small">"Open a tag to see its nearest tokens."</p> }.into_any(),
                Nearest::Loading(t, _) => view! { <p class="status loading">{format!("Comparing <{t}> with the vocabulary…")}</p> }.into_any(),
                Nearest::Failed { error, .. } => view! { <p class="error">{error}</p> }.into_any(),
                Nearest::Done { tag, centred, vectors, ms } => view! {
                    <table class="nearest" data-testid="nearest" data-tag=tag.clone() data-centred=centred.to_string()>
                        <thead><tr><th>"vector"</th><th>{format!("nearest tokens ({}cosine), computed in {ms:.0} ms", if centred { "shared direction removed, " } else { "" })}</th></tr></thead>
                        <tbody>
                        {vectors.into_iter().enumerate().map(|(i, toks)| view! {
                            <tr data-testid="nearest-row">
                                <td class="num">{i + 1}</td>
                                <td>{toks.into_iter().map(|(tok, c)| view! {
                                    <span class="tok" data-token=tok.clone()><code>{visible(&tok)}</code><span class="cos">{format!("{c:.2}")}</span></span>
                                }).collect_view()}</td>
                            </tr>
                        }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
        </details>
    }
}
