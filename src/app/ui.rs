//! The page (Leptos, client-side rendered). Everything heavy happens in the worker; this thread
//! validates inputs as they are typed and shows state.

use std::cell::RefCell;

use js_sys::{Array, Uint8Array};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Blob, BlobPropertyBag, ErrorEvent, HtmlAnchorElement, HtmlInputElement, MessageEvent, Url, Worker};

use super::protocol::{csv_field, FromWorker, Outcome, TagInfo, ToWorker, WeightsChoice};
use crate::input::{read_records, InputKind};
use crate::model::DEFAULT_MODEL_SHA256;
use crate::predict::render_input;

/// Where Trunk puts the model file and the tag list (see `web/index.html`).
pub const MODEL_URL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const TAGS_URL: &str = "tags/index.json";
pub const WORKER_URL: &str = "./tagllm-worker_loader.js";

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

fn post(msg: &ToWorker, bytes: Option<Uint8Array>) {
    let text = serde_json::to_string(msg).expect("messages serialise");
    WORKER.with(|w| {
        if let Some(w) = w.borrow().as_ref() {
            let _ = match bytes {
                None => w.post_message(&JsValue::from_str(&text)),
                Some(b) => w.post_message(&Array::of2(&JsValue::from_str(&text), &b)),
            };
        }
    });
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn query(name: &str) -> Option<String> {
    let search = window().location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    input: String,
    value: Option<f64>,
    error: Option<String>,
}

/// The page's state; signals are `Copy`, so this is too.
#[derive(Clone, Copy)]
struct App {
    state: RwSignal<&'static str>,
    status: RwSignal<String>,
    download: RwSignal<Option<(u64, u64)>>,
    download_start: RwSignal<f64>,
    weights: RwSignal<WeightsChoice>,
    load_info: RwSignal<String>,
    /// Why the f32 weights were given up, if they were.
    fallback: RwSignal<Option<String>>,
    tags: RwSignal<Vec<TagInfo>>,
    tag_errors: RwSignal<Vec<String>>,
    selected: RwSignal<String>,
    input: RwSignal<String>,
    protein: RwSignal<String>,
    running: RwSignal<Option<u32>>,
    next_id: RwSignal<u32>,
    progress: RwSignal<(usize, usize)>,
    results: RwSignal<Vec<Row>>,
    results_tag: RwSignal<String>,
    results_target: RwSignal<String>,
    run_info: RwSignal<String>,
    run_started: RwSignal<f64>,
    /// Inputs of the run in progress, to pair with the worker's results.
    pending: RwSignal<Vec<String>>,
    prompt: RwSignal<String>,
    max_tokens: RwSignal<String>,
    temperature: RwSignal<String>,
    generating: RwSignal<Option<u32>>,
    generated: RwSignal<String>,
    gen_info: RwSignal<String>,
}

impl App {
    fn new() -> Self {
        Self {
            state: RwSignal::new("loading"),
            status: RwSignal::new("Starting the worker…".into()),
            download: RwSignal::new(None),
            download_start: RwSignal::new(0.0),
            weights: RwSignal::new(WeightsChoice::F32),
            load_info: RwSignal::new(String::new()),
            fallback: RwSignal::new(None),
            tags: RwSignal::new(vec![]),
            tag_errors: RwSignal::new(vec![]),
            selected: RwSignal::new(String::new()),
            input: RwSignal::new(String::new()),
            protein: RwSignal::new(String::new()),
            running: RwSignal::new(None),
            next_id: RwSignal::new(1),
            progress: RwSignal::new((0, 0)),
            results: RwSignal::new(vec![]),
            results_tag: RwSignal::new(String::new()),
            results_target: RwSignal::new(String::new()),
            run_info: RwSignal::new(String::new()),
            run_started: RwSignal::new(0.0),
            pending: RwSignal::new(vec![]),
            prompt: RwSignal::new("The capital of France is".into()),
            max_tokens: RwSignal::new("32".into()),
            temperature: RwSignal::new("0".into()),
            generating: RwSignal::new(None),
            generated: RwSignal::new(String::new()),
            gen_info: RwSignal::new(String::new()),
        }
    }

    fn selected_tag(&self) -> Option<TagInfo> {
        let name = self.selected.get();
        self.tags.get().into_iter().find(|t| t.name == name)
    }

    /// Starts (or restarts) the worker and asks it to load the model with `weights`.
    fn spawn_worker(self, weights: WeightsChoice) {
        WORKER.with(|w| {
            if let Some(old) = w.borrow_mut().take() {
                old.terminate();
            }
        });
        self.weights.set(weights);
        self.state.set("loading");
        let worker = match Worker::new(WORKER_URL) {
            Ok(w) => w,
            Err(e) => {
                self.state.set("error");
                self.status.set(format!("Cannot start the inference worker: {e:?}"));
                return;
            }
        };
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let Some(text) = ev.data().as_string() else { return };
            match serde_json::from_str::<FromWorker>(&text) {
                Ok(msg) => self.on_worker(msg),
                Err(e) => web_sys::console::error_1(&format!("page: bad message {text}: {e}").into()),
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |ev: ErrorEvent| {
            let message = ev.message();
            self.worker_failed(format!("the inference worker stopped: {message}"));
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        WORKER.with(|w| *w.borrow_mut() = Some(worker));
    }

    /// The worker died or refused to load: with f32 weights, try the quantised ones (a browser
    /// that cannot give ~700 MB to a tab); otherwise show the error.
    fn worker_failed(self, message: String) {
        if self.state.get_untracked() == "loading" && self.weights.get_untracked() == WeightsChoice::F32 {
            web_sys::console::warn_1(&format!("{message}; retrying with quantised weights").into());
            self.fallback.set(Some(message.clone()));
            self.spawn_worker(WeightsChoice::Quantized);
            self.status.set(format!("f32 weights failed ({message}); loading the quantised weights…"));
            return;
        }
        if self.running.get_untracked().is_some() {
            self.running.set(None);
            self.run_info.set(format!("The run failed: {message}"));
        }
        self.state.set("error");
        self.status.set(message);
    }

    fn on_worker(self, msg: FromWorker) {
        match msg {
            FromWorker::Hello => {
                let weights = self.weights.get_untracked();
                post(
                    &ToWorker::Init {
                        model_url: MODEL_URL.into(),
                        model_sha256: DEFAULT_MODEL_SHA256.into(),
                        tags_url: TAGS_URL.into(),
                        weights,
                    },
                    None,
                );
            }
            FromWorker::Download { loaded, total } => {
                if self.download.get_untracked().is_none() {
                    self.download_start.set(now_ms());
                }
                self.download.set(Some((loaded, total)));
            }
            FromWorker::Status { text } => self.status.set(text),
            FromWorker::Ready { weights, backend, load_ms, from_cache, tags, tag_errors } => {
                self.weights.set(weights);
                let w = match weights {
                    WeightsChoice::F32 => "f32 weights",
                    WeightsChoice::Quantized => "quantised weights (results differ slightly from the CLI's)",
                };
                let w = match self.fallback.get_untracked() {
                    Some(why) => format!("{w}; f32 weights failed: {why}"),
                    None => w.to_string(),
                };
                let source = if from_cache { "from the browser cache" } else { "downloaded" };
                self.load_info.set(format!("{backend}, {w}; model {source} and loaded in {:.1} s", load_ms / 1000.0));
                self.set_tags(tags, tag_errors);
                self.state.set("ready");
                self.status.set("Model ready".into());
            }
            FromWorker::Fatal { message } => self.worker_failed(message),
            FromWorker::Tags { tags, errors } => self.set_tags(tags, errors),
            FromWorker::Progress { id, done, total } => {
                if self.running.get_untracked() == Some(id) {
                    self.progress.set((done, total));
                }
            }
            FromWorker::Results { id, values, ms, cancelled } => {
                if self.running.get_untracked() != Some(id) {
                    return;
                }
                let inputs = self.pending.get_untracked();
                let n_ok = values.iter().filter(|v| matches!(v, Outcome::Value(_))).count();
                let rows = inputs
                    .into_iter()
                    .zip(values)
                    .map(|(input, v)| match v {
                        Outcome::Value(x) => Row { input, value: Some(x), error: None },
                        Outcome::Error(e) => Row { input, value: None, error: Some(e) },
                    })
                    .collect::<Vec<_>>();
                let per = if n_ok > 0 { format!(", {:.0} ms per input", ms / n_ok as f64) } else { String::new() };
                self.run_info.set(format!(
                    "{}{n_ok} of {} predicted in {:.1} s{per}",
                    if cancelled { "Cancelled: " } else { "" },
                    rows.len(),
                    ms / 1000.0
                ));
                self.results.set(rows);
                self.running.set(None);
            }
            FromWorker::Piece { id, text } => {
                if self.generating.get_untracked() == Some(id) {
                    self.generated.update(|g| g.push_str(&text));
                }
            }
            FromWorker::Generated { id, tokens, ms, error } => {
                if self.generating.get_untracked() != Some(id) {
                    return;
                }
                self.gen_info.set(match error {
                    Some(e) => format!("Error: {e}"),
                    None => format!("{tokens} tokens in {:.1} s", ms / 1000.0),
                });
                self.generating.set(None);
            }
        }
    }

    fn generate(self) {
        let max_tokens = self.max_tokens.get_untracked().trim().parse::<usize>().unwrap_or(32).clamp(1, 512);
        let temperature = self.temperature.get_untracked().trim().parse::<f64>().unwrap_or(0.0).max(0.0);
        let id = self.next_id.get_untracked();
        self.next_id.set(id + 1);
        self.generated.set(String::new());
        self.gen_info.set(String::new());
        self.generating.set(Some(id));
        let seed = js_sys::Date::now() as u64;
        post(&ToWorker::Generate { id, prompt: self.prompt.get_untracked(), max_tokens, temperature, seed }, None);
    }

    fn set_tags(self, tags: Vec<TagInfo>, errors: Vec<String>) {
        let current = self.selected.get_untracked();
        let usable: Vec<&TagInfo> = tags.iter().filter(|t| t.function).collect();
        if !usable.iter().any(|t| t.name == current) {
            let first = usable.iter().find(|t| t.problem.is_none()).or(usable.first());
            self.selected.set(first.map(|t| t.name.clone()).unwrap_or_default());
        }
        self.tags.set(tags);
        self.tag_errors.set(errors);
    }

    fn run(self) {
        let Some(tag) = self.selected_tag() else { return };
        let plan = Plan::new(&tag, &self.input.get_untracked(), &self.protein.get_untracked());
        let Ok(records) = plan.records else { return };
        let id = self.next_id.get_untracked();
        self.next_id.set(id + 1);
        let items: Vec<Vec<String>> = records
            .iter()
            .map(|(_, text, _)| {
                (0..tag.slots.len())
                    .map(|i| if i == plan.list_slot { text.clone() } else { self.protein.get_untracked().trim().to_string() })
                    .collect()
            })
            .collect();
        self.pending.set(records.into_iter().map(|(_, t, _)| t).collect());
        self.progress.set((0, items.len()));
        self.running.set(Some(id));
        self.results_tag.set(tag.name.clone());
        self.results_target.set(tag.target.clone());
        self.run_started.set(now_ms());
        self.run_info.set(String::new());
        post(&ToWorker::Predict { id, tag: tag.name, items }, None);
    }
}

/// One line (or FASTA record) of the text box: its line number, the input, and whether it is valid.
type Checked = (usize, String, Result<(), String>);

/// How the text box maps onto a function tag's inputs.
struct Plan {
    /// The slot the text box feeds; the others (a protein) come from the protein box.
    list_slot: usize,
    needs_protein: bool,
    list_kind: &'static str,
    /// (line, input, validation) per record, or why the text could not be read.
    records: Result<Vec<Checked>, String>,
}

impl Plan {
    fn new(tag: &TagInfo, text: &str, _protein: &str) -> Self {
        let list_slot = tag.slots.iter().rposition(|s| !s.protein).unwrap_or(tag.slots.len().saturating_sub(1));
        let needs_protein = tag.slots.len() > 1 && tag.slots.iter().enumerate().any(|(i, s)| i != list_slot && s.protein);
        let slot = tag.slots.get(list_slot);
        let kind = slot.map(|s| s.kind()).unwrap_or(crate::tags::InputType::Smiles);
        let input_kind = if slot.is_some_and(|s| s.protein) { InputKind::Protein } else { InputKind::Smiles };
        let records = if text.trim().is_empty() {
            Ok(vec![])
        } else {
            read_records(text, None, None, input_kind).map_err(|e| e.to_string()).map(|recs| {
                recs.into_iter()
                    .map(|r| {
                        let check = render_input(kind, &r.text).map(|_| ());
                        (r.line, r.text, check)
                    })
                    .collect()
            })
        };
        Self {
            list_slot,
            needs_protein,
            list_kind: if input_kind == InputKind::Protein { "protein sequences (one per line, or FASTA)" } else { "SMILES (one per line; a name after it is ignored)" },
            records,
        }
    }
}

fn fmt_mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn download_csv(name: &str, rows: &[Row]) {
    let mut csv = String::from("input,prediction,error\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{},{}\n",
            csv_field(&r.input),
            r.value.map(|v| v.to_string()).unwrap_or_default(),
            csv_field(r.error.as_deref().unwrap_or(""))
        ));
    }
    let bag = BlobPropertyBag::new();
    bag.set_type("text/csv");
    let Ok(blob) = Blob::new_with_str_sequence_and_options(&Array::of1(&JsValue::from_str(&csv)), &bag) else { return };
    let Ok(url) = Url::create_object_url_with_blob(&blob) else { return };
    if let Ok(a) = document().create_element("a").map(|a| a.unchecked_into::<HtmlAnchorElement>()) {
        a.set_href(&url);
        a.set_download(&format!("tagllm-{name}.csv"));
        a.click();
    }
    let _ = Url::revoke_object_url(&url);
}

/// Mounts the page.
pub fn mount() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(Page);
}

#[component]
fn Page() -> impl IntoView {
    let app = App::new();
    let requested = query("backend").unwrap_or_else(|| "cpu".into()).to_lowercase();
    let backend = if requested == "cpu" {
        "CPU (WebAssembly, SIMD)".to_string()
    } else {
        format!("CPU (WebAssembly, SIMD) — backend `{requested}` is not available yet")
    };
    let weights = if query("weights").is_some_and(|w| w == "quantized" || w == "q4") {
        WeightsChoice::Quantized
    } else {
        WeightsChoice::F32
    };
    app.spawn_worker(weights);

    let plan = Memo::new(move |_| {
        app.selected_tag().map(|t| {
            let p = Plan::new(&t, &app.input.get(), &app.protein.get());
            let valid = p.records.as_ref().map(|r| r.iter().filter(|x| x.2.is_ok()).count()).unwrap_or(0);
            let total = p.records.as_ref().map(|r| r.len()).unwrap_or(0);
            let errors: Vec<String> = match &p.records {
                Ok(r) => r.iter().filter_map(|(line, _, c)| c.as_ref().err().map(|e| format!("line {line}: {e}"))).collect(),
                Err(e) => vec![e.clone()],
            };
            (p.needs_protein, p.list_kind, valid, total, errors)
        })
    });
    let protein_check = Memo::new(move |_| {
        let p = app.protein.get();
        if p.trim().is_empty() {
            Some("enter the protein sequence".to_string())
        } else {
            render_input(crate::tags::InputType::Protein, p.trim()).err()
        }
    });
    let needs_protein = move || plan.get().is_some_and(|p| p.0);
    let can_run = move || {
        app.state.get() == "ready"
            && app.running.get().is_none()
            && plan.get().is_some_and(|p| p.3 > 0 && (!p.0 || protein_check.get().is_none()))
    };

    let on_tag_files = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let Some(files) = input.files() else { return };
        for i in 0..files.length() {
            let Some(file) = files.get(i) else { continue };
            spawn_local(async move {
                match JsFuture::from(file.array_buffer()).await {
                    Ok(buf) => post(&ToWorker::AddTag { file: file.name() }, Some(Uint8Array::new(&buf))),
                    Err(e) => app.tag_errors.set(vec![format!("{}: cannot read the file: {e:?}", file.name())]),
                }
            });
        }
        input.set_value("");
    };
    let on_input_file = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        spawn_local(async move {
            if let Ok(text) = JsFuture::from(file.text()).await {
                app.input.set(text.as_string().unwrap_or_default());
            }
        });
        input.set_value("");
    };

    view! {
        <header>
            <h1>"tagllm"</h1>
            <p class="lead">"Molecular and protein property predictions from a small language model (SmolLM2-135M) with learned "<em>"tags"</em>" — computed in your browser; nothing leaves this device."</p>
        </header>

        <section class="card">
            <div class="row">
                <span class="label">"Model"</span>
                <span data-testid="model-status" data-state=move || app.state.get() class=move || format!("status {}", app.state.get())>
                    {move || app.status.get()}
                </span>
            </div>
            {move || app.download.get().filter(|_| app.state.get() == "loading").map(|(loaded, total)| {
                let secs = ((now_ms() - app.download_start.get_untracked()) / 1000.0).max(0.001);
                let pct = if total > 0 { loaded as f64 * 100.0 / total as f64 } else { 0.0 };
                view! {
                    <div class="download">
                        <progress max="100" value=pct></progress>
                        <span data-testid="download-progress">{format!("{} of {} ({pct:.0}%), {:.1} MB/s", fmt_mb(loaded), fmt_mb(total), loaded as f64 / 1e6 / secs)}</span>
                    </div>
                }
            })}
            <div class="row small">
                <span class="label">"Backend"</span>
                <span data-testid="backend">{backend}</span>
            </div>
            <div class="row small" data-testid="load-info">{move || app.load_info.get()}</div>
        </section>

        <section class="card">
            <div class="row">
                <label class="label" for="tag">"Predict"</label>
                <select id="tag" data-testid="function-tag"
                    prop:value=move || app.selected.get()
                    on:change=move |ev| app.selected.set(event_target_value(&ev))>
                    {move || app.tags.get().into_iter().filter(|t| t.function).map(|t| {
                        let label = if t.target.is_empty() || t.target == t.name { t.name.clone() } else { format!("{} — {}", t.name, t.target) };
                        let selected = t.name == app.selected.get_untracked();
                        view! { <option value=t.name.clone() selected=selected>{label}</option> }
                    }).collect_view()}
                </select>
                <label class="button secondary">
                    "Add tag files…"
                    <input type="file" data-testid="tag-file" accept=".safetensors" multiple on:change=on_tag_files />
                </label>
            </div>
            {move || app.selected_tag().map(|t| view! {
                <p class="small tag-info">
                    {t.description.clone()}
                    {(!t.metrics.is_empty()).then(|| format!(" Test metrics: {}.", t.metrics))}
                    {t.problem.clone().map(|p| view! { <span class="error">{format!(" Cannot predict: {p}")}</span> })}
                </p>
            })}
            {move || (app.state.get() == "ready" && !app.tags.get().iter().any(|t| t.function)).then(|| view! {
                <p class="error">"No function tags are loaded. Add tag files (.safetensors) above."</p>
            })}
            <ul class="error small" data-testid="tag-errors">
                {move || app.tag_errors.get().into_iter().map(|e| view! { <li>{e}</li> }).collect_view()}
            </ul>

            <Show when=needs_protein>
                <label class="label block" for="protein">"Protein sequence (one-letter codes or FASTA)"</label>
                <textarea id="protein" data-testid="protein-input" rows="3" spellcheck="false"
                    placeholder="MKTAYIAKQRQISFVKSHFSRQ…"
                    prop:value=move || app.protein.get()
                    on:input=move |ev| app.protein.set(event_target_value(&ev))></textarea>
                <p class="error small">{move || protein_check.get()}</p>
            </Show>

            <label class="label block" for="input">
                {move || format!("Inputs: {}", plan.get().map(|p| p.1).unwrap_or("one per line"))}
            </label>
            <textarea id="input" data-testid="input" rows="8" spellcheck="false"
                placeholder="CCO\nCC(=O)Oc1ccccc1C(=O)O aspirin\nc1ccccc1"
                prop:value=move || app.input.get()
                on:input=move |ev| app.input.set(event_target_value(&ev))></textarea>
            <div class="row small">
                <span data-testid="validation">{move || plan.get().map(|p| {
                    let invalid = p.3 - p.2;
                    if p.3 == 0 { "No inputs yet.".to_string() } else { format!("{} inputs: {} valid, {invalid} invalid (invalid ones are reported, the rest predicted)", p.3, p.2) }
                })}</span>
                <label class="button secondary">
                    "Load a file…"
                    <input type="file" accept=".smi,.txt,.csv,.tsv,.fasta,.fa,.faa" on:change=on_input_file />
                </label>
            </div>
            <ul class="error small validation-errors">
                {move || plan.get().map(|p| p.4.into_iter().take(20).map(|e| view! { <li>{e}</li> }).collect_view())}
            </ul>

            <div class="row">
                <button data-testid="run" class="button" disabled=move || !can_run() on:click=move |_| app.run()>"Run"</button>
                <Show when=move || app.running.get().is_some()>
                    <progress max=move || app.progress.get().1 value=move || app.progress.get().0></progress>
                    <span data-testid="run-progress">{move || { let (d, t) = app.progress.get(); format!("{d} of {t}") }}</span>
                    <button data-testid="cancel" class="button secondary" on:click=move |_| {
                        if let Some(id) = app.running.get_untracked() { post(&ToWorker::Cancel { id }, None) }
                    }>"Cancel"</button>
                </Show>
                <span class="small" data-testid="run-info">{move || app.run_info.get()}</span>
            </div>
        </section>

        <Show when=move || !app.results.get().is_empty()>
            <section class="card">
                <div class="row">
                    <h2>{move || format!("Results — {}", app.results_tag.get())}</h2>
                    <button data-testid="download-csv" class="button secondary"
                        on:click=move |_| download_csv(&app.results_tag.get_untracked(), &app.results.get_untracked())>"Download CSV"</button>
                </div>
                <table data-testid="results">
                    <thead><tr><th>"#"</th><th class="input">"input"</th><th class="num">{move || { let t = app.results_target.get(); if t.is_empty() { "prediction".to_string() } else { format!("prediction ({t})") } }}</th><th>"error"</th></tr></thead>
                    <tbody>
                        {move || app.results.get().into_iter().enumerate().map(|(i, r)| {
                            let shown = r.value.map(|v| format!("{v:.4}")).unwrap_or_default();
                            let bad = r.error.is_some();
                            let (input, error) = (r.input.clone(), r.error.clone().unwrap_or_default());
                            view! {
                                <tr data-testid="result-row" data-input=r.input.clone()
                                    data-value=r.value.map(|v| v.to_string())
                                    data-error=r.error.clone()
                                    class:bad=bad>
                                    <td class="num">{i + 1}</td>
                                    <td class="mono">{input}</td>
                                    <td class="num">{shown}</td>
                                    <td class="error">{error}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        </Show>

        <details class="card" data-testid="generation">
            <summary><h2 class="inline">"Generate text"</h2>
                <span class="small">" — the base model continues a prompt; write a tag's name in angle brackets (e.g. <QED>) to splice its vectors in"</span></summary>
            <textarea data-testid="prompt" rows="3" spellcheck="false"
                prop:value=move || app.prompt.get()
                on:input=move |ev| app.prompt.set(event_target_value(&ev))></textarea>
            <div class="row small">
                <label>"max tokens "<input data-testid="max-tokens" type="number" min="1" max="512" class="num-input"
                    prop:value=move || app.max_tokens.get() on:input=move |ev| app.max_tokens.set(event_target_value(&ev)) /></label>
                <label>"temperature "<input data-testid="temperature" type="number" min="0" max="2" step="0.1" class="num-input"
                    prop:value=move || app.temperature.get() on:input=move |ev| app.temperature.set(event_target_value(&ev)) /></label>
                <button data-testid="generate" class="button"
                    disabled=move || app.state.get() != "ready" || app.generating.get().is_some() || app.running.get().is_some()
                    on:click=move |_| app.generate()>"Generate"</button>
                <span data-testid="gen-info">{move || app.gen_info.get()}</span>
            </div>
            <pre data-testid="generated" data-state=move || if app.generating.get().is_some() { "running" } else { "done" }>
                <span class="prompt-echo">{move || app.prompt.get()}</span><span data-testid="generated-text">{move || app.generated.get()}</span>
            </pre>
        </details>

        <footer class="small">
            "Tag-LLM (Shen et al., ICML 2024). Predictions from untrained or weak tags are not measurements; see each tag's test metrics."
        </footer>
    }
}
