//! The page (Leptos, client-side rendered). Everything heavy happens in the worker; this thread
//! validates inputs as they are typed and shows state.
//!
//! Modules: [`results`] (table, chart, CSV, clipboard), [`inspector`] (tag cards, nearest tokens),
//! [`offline`] (service worker, connection and cache state), [`storage`] (what survives a reload),
//! [`markdown`] (model cards).

mod bench;
mod inspector;
mod markdown;
mod offline;
mod results;
mod storage;

use std::cell::RefCell;

use js_sys::{Array, Uint8Array};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{DragEvent, ErrorEvent, File, FileList, HtmlInputElement, MessageEvent, Response, Worker};

use super::protocol::{BackendChoice, FromWorker, ModelInfo, Outcome, TagInfo, ToWorker, WeightsChoice};
use crate::input::{read_records, InputKind};
use crate::model::DEFAULT_MODEL_SHA256;
use crate::predict::render_input;
use inspector::{Inspector, Nearest};
use offline::Offline;
use results::{Chart, Row, SortKey};
use storage::SavedResults;

/// Where Trunk puts the model file and the tag list (see `web/index.html`).
pub const MODEL_URL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const TAGS_URL: &str = "tags/index.json";
/// The model cards present in `tags/` (a JSON list of `NAME.md`), written by `web/tags-index.sh`.
pub const CARDS_URL: &str = "tags/cards.json";
pub const WORKER_URL: &str = "./tagllm-worker_loader.js";

/// Drug molecules every chemistry student knows, and one broken line to show validation.
const SMILES_EXAMPLE: &str = "CC(=O)Oc1ccccc1C(=O)O aspirin
CN1C=NC2=C1C(=O)N(C(=O)N2C)C caffeine
CC(C)Cc1ccc(cc1)C(C)C(=O)O ibuprofen
CC(=O)Nc1ccc(O)cc1 paracetamol
CC(=O)Nc1ccc(O)cc1C(=O broken: unclosed branch";

/// Human CDK2 (cyclin-dependent kinase 2) from `data/tasks/BindingAffinity/proteins.csv`.
const KINASE_EXAMPLE: &str = ">CDK2 cyclin-dependent kinase 2, human
MENFQKVEKIGEGTYGVVYKARNKLTGEVVALKKIRLDTETEGVPSTAIREISLLKELNHPNIVKLLDVIHTENKLYLVFEFLHQDLKKFMDASALTGIPLPLIKSYLFQLLQGLAFCHSHRVLHRDLKPQNLLINTEGAIKLADFGLARAFGVPVRTYTHEVVTLWYRAPEILLGCKYYSTAVDIWSLGCIFAEMVTRRALFPGDSEIDQLFRIFRTLGTPDEVVWPGVTSMPDYKPSFPKWARQDFSKVVPPLDEDGRSLLSQMLHYDPNKRISAKAALAHPFFQDVTKPVPHLRL";

/// Two kinases as FASTA, for tags that take a list of proteins.
const PROTEINS_EXAMPLE: &str = ">CDK2 cyclin-dependent kinase 2, human
MENFQKVEKIGEGTYGVVYKARNKLTGEVVALKKIRLDTETEGVPSTAIREISLLKELNHPNIVKLLDVIHTENKLYLVFEFLHQDLKKFMDASALTGIPLPLIKSYLFQLLQGLAFCHSHRVLHRDLKPQNLLINTEGAIKLADFGLARAFGVPVRTYTHEVVTLWYRAPEILLGCKYYSTAVDIWSLGCIFAEMVTRRALFPGDSEIDQLFRIFRTLGTPDEVVWPGVTSMPDYKPSFPKWARQDFSKVVPPLDEDGRSLLSQMLHYDPNKRISAKAALAHPFFQDVTKPVPHLRL
>CDK5 cyclin-dependent kinase 5, human
MQKYEKLEKIGEGTYGTVFKAKNRETHEIVALKRVRLDDDDEGVPSSALREICLLKELKHKNIVRLHDVLHSDKKLTLVFEFCDQDLKKYFDSCNGDLDPEIVKSFLFQLLKGLGFCHSRNVLHRDLKPQNLLINRNGELKLADFGLARAFGIPVRCYSAEVVTLWYRPPDVLFGAKLYSTSIDMWSAGCIFAELANAGRPLFPGNDVDDQLKRIFRLLGTPTEEQWPSMTKLPDYKPYPMYPATTSLVNVVPKLNATGRDLLQNLLKCNPVQRISAEEALQHPYFSDFCPP";

/// Ligands measured against CDK2 in the same data (pKd after the SMILES, for comparison).
const LIGANDS_EXAMPLE: &str = "CC12C(C(CC(O1)N3C4=CC=CC=C4C5=C6C(=C7C8=CC=CC=C8N2C7=C53)CNC6=O)NC)OC staurosporine, measured pKd 8.15
C1CNCCC1NC(=O)C2=C(C=NN2)NC(=O)C3=C(C=CC=C3Cl)Cl measured pKd 7.52
CC(C)(C)C1=CN=C(O1)CSC2=CN=C(S2)NC(=O)C3CCNCC3 measured pKd 7.16
CN1CCC(CC1)COC2=C(C=C3C(=C2)N=CN=C3NC4=C(C=C(C=C4)Br)F)OC measured pKd 5.0 (inactive)
C1=CC=C2C(=C1)C(=NN=C2NC3=CC=C(C=C3)Cl)CC4=CC=NC=C4 measured pKd 5.0 (inactive)";

/// Rows drawn in the table before "show all" (thousands of rows would slow the page down).
const SHOWN_ROWS: usize = 500;

/// A prompt for the side-by-side generation: the same words with and without a tag.
const GENERATION_EXAMPLE: &str = "The molecule <SMILES> CC(=O)Oc1ccccc1C(=O)O is";

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

pub(crate) fn post(msg: &ToWorker, bytes: Option<Uint8Array>) {
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

/// GETs `url` (through the service worker, so offline too) as text.
pub(crate) async fn fetch_text(url: &str) -> Result<String, String> {
    let resp: Response = JsFuture::from(window().fetch_with_str(url))
        .await
        .map_err(|e| format!("cannot fetch {url}: {e:?}"))?
        .unchecked_into();
    if !resp.ok() {
        return Err(format!("cannot fetch {url}: HTTP {}", resp.status()));
    }
    let text = JsFuture::from(resp.text().map_err(|e| format!("{e:?}"))?).await.map_err(|e| format!("{e:?}"))?;
    Ok(text.as_string().unwrap_or_default())
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn query(name: &str) -> Option<String> {
    let search = window().location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

fn short(sha: &str, n: usize) -> &str {
    sha.get(..n).unwrap_or(sha)
}

/// A duration in words, for "time left".
fn fmt_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{:.0} s", s.max(1.0))
    } else if s < 3600.0 {
        format!("{:.0} min {:.0} s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{:.0} h {:.0} min", (s / 3600.0).floor(), (s % 3600.0) / 60.0)
    }
}

/// The page's state; signals are `Copy`, so this is too.
#[derive(Clone, Copy)]
pub(crate) struct App {
    state: RwSignal<&'static str>,
    status: RwSignal<String>,
    download: RwSignal<Option<(u64, u64)>>,
    download_start: RwSignal<f64>,
    weights: RwSignal<WeightsChoice>,
    /// Where the user wants the forward pass to run, and what the worker says runs (and why).
    backend_choice: RwSignal<BackendChoice>,
    backend: RwSignal<String>,
    /// `?fault=lose-gpu`: tell the worker to destroy its GPU device during the next run (tests).
    lose_gpu: bool,
    load_info: RwSignal<String>,
    model: RwSignal<ModelInfo>,
    model_error: RwSignal<String>,
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
    /// (time, done) of the first progress report of a run: the rate counts from there (invalid
    /// inputs are done at once and would inflate it).
    progress_base: RwSignal<Option<(f64, usize)>>,
    results: RwSignal<Vec<Row>>,
    results_tag: RwSignal<String>,
    results_target: RwSignal<String>,
    run_info: RwSignal<String>,
    last_save: RwSignal<f64>,
    sort: RwSignal<(SortKey, bool)>,
    /// Show every row, not only the first SHOWN_ROWS.
    show_all: RwSignal<bool>,
    copied: RwSignal<Option<(String, String)>>,
    prompt: RwSignal<String>,
    max_tokens: RwSignal<String>,
    temperature: RwSignal<String>,
    /// The two generations: the prompt as written (with tags) and without its tags.
    gen_ids: RwSignal<(Option<u32>, Option<u32>)>,
    generated: RwSignal<String>,
    generated_plain: RwSignal<String>,
    gen_info: RwSignal<String>,
    gen_plain_info: RwSignal<String>,
    inspector_open: RwSignal<bool>,
    inspect_tag: RwSignal<String>,
    /// Nearest tokens with the mean-embedding direction projected out.
    centred: RwSignal<bool>,
    nearest: RwSignal<Nearest>,
    cards: RwSignal<Vec<String>>,
    card: RwSignal<Option<(String, String)>>,
    dragging: RwSignal<bool>,
    offline: Offline,
}

impl App {
    fn new() -> Self {
        let saved = storage::load_results().unwrap_or_default();
        Self {
            state: RwSignal::new("loading"),
            status: RwSignal::new("Starting the worker…".into()),
            download: RwSignal::new(None),
            download_start: RwSignal::new(0.0),
            weights: RwSignal::new(WeightsChoice::F32),
            backend_choice: RwSignal::new(BackendChoice::parse(
                &query("backend").or_else(|| storage::get(storage::BACKEND)).unwrap_or_default(),
            )),
            backend: RwSignal::new("—".into()),
            lose_gpu: query("fault").as_deref() == Some("lose-gpu"),
            load_info: RwSignal::new(String::new()),
            model: RwSignal::new(ModelInfo::default()),
            model_error: RwSignal::new(String::new()),
            fallback: RwSignal::new(None),
            tags: RwSignal::new(vec![]),
            tag_errors: RwSignal::new(vec![]),
            selected: RwSignal::new(storage::get(storage::TAG).unwrap_or_default()),
            input: RwSignal::new(storage::get(storage::INPUT).unwrap_or_default()),
            protein: RwSignal::new(storage::get(storage::PROTEIN).unwrap_or_default()),
            running: RwSignal::new(None),
            next_id: RwSignal::new(1),
            progress: RwSignal::new((0, 0)),
            progress_base: RwSignal::new(None),
            results: RwSignal::new(saved.rows),
            results_tag: RwSignal::new(saved.tag),
            results_target: RwSignal::new(saved.target),
            run_info: RwSignal::new(saved.info),
            last_save: RwSignal::new(0.0),
            sort: RwSignal::new((SortKey::Order, true)),
            show_all: RwSignal::new(false),
            copied: RwSignal::new(None),
            prompt: RwSignal::new("The capital of France is".into()),
            max_tokens: RwSignal::new("32".into()),
            temperature: RwSignal::new("0".into()),
            gen_ids: RwSignal::new((None, None)),
            generated: RwSignal::new(String::new()),
            generated_plain: RwSignal::new(String::new()),
            gen_info: RwSignal::new(String::new()),
            gen_plain_info: RwSignal::new(String::new()),
            inspector_open: RwSignal::new(false),
            inspect_tag: RwSignal::new(String::new()),
            centred: RwSignal::new(false),
            nearest: RwSignal::new(Nearest::None),
            cards: RwSignal::new(vec![]),
            card: RwSignal::new(None),
            dragging: RwSignal::new(false),
            offline: Offline::new(),
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
    /// that cannot give the ~250 MB to a tab); otherwise show the error.
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
            self.save_results(false);
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
                        backend: self.backend_choice.get_untracked(),
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
            FromWorker::Ready { weights, backend, load_ms, from_cache: _, model, tags, tag_errors } => {
                self.weights.set(weights);
                let w = match weights {
                    WeightsChoice::F32 => "f32 weights",
                    WeightsChoice::Quantized => "quantised weights (results differ slightly from the CLI's)",
                };
                let w = match self.fallback.get_untracked() {
                    Some(why) => format!("{w}; f32 weights failed: {why}"),
                    None => w.to_string(),
                };
                let source = match model.source.as_str() {
                    "browser cache" => "from the browser cache".to_string(),
                    "downloaded" => "downloaded".to_string(),
                    other => format!("from the {other}"),
                };
                self.backend.set(backend);
                self.load_info.set(format!("{w}; model {source} and loaded in {:.1} s", load_ms / 1000.0));
                self.model.set(model);
                self.model_error.set(String::new());
                self.set_tags(tags, tag_errors);
                self.nearest.set(Nearest::None);
                self.state.set("ready");
                self.status.set("Model ready".into());
                self.offline.check_cached();
            }
            FromWorker::Backend { backend } => self.backend.set(backend),
            FromWorker::Fatal { message } => self.worker_failed(message),
            FromWorker::ModelError { message } => {
                self.model_error.set(message);
                self.state.set("ready");
                self.status.set("Model ready (the file was refused; the model loaded before stays)".into());
            }
            FromWorker::Tags { tags, errors } => self.set_tags(tags, errors),
            FromWorker::Progress { id, done, total } => {
                if self.running.get_untracked() == Some(id) {
                    if self.progress_base.get_untracked().is_none() {
                        self.progress_base.set(Some((now_ms(), done)));
                    }
                    self.progress.set((done, total));
                }
            }
            FromWorker::Partial { id, values } => {
                if self.running.get_untracked() != Some(id) {
                    return;
                }
                self.results.update(|rows| {
                    for (i, v) in values {
                        if let Some(row) = rows.get_mut(i) {
                            match v {
                                Outcome::Value(x) => row.value = Some(x),
                                Outcome::Error(e) => row.error = Some(e),
                            }
                        }
                    }
                });
                // Saved now and then: a reload keeps what was computed.
                if now_ms() - self.last_save.get_untracked() > 1000.0 {
                    self.save_results(true);
                }
            }
            FromWorker::Results { id, values, ms, cancelled } => {
                if self.running.get_untracked() != Some(id) {
                    return;
                }
                let n_ok = values.iter().filter(|v| matches!(v, Outcome::Value(_))).count();
                let n = values.len();
                self.results.update(|rows| {
                    for (row, v) in rows.iter_mut().zip(values) {
                        match v {
                            Outcome::Value(x) => (row.value, row.error) = (Some(x), None),
                            Outcome::Error(e) => (row.value, row.error) = (None, Some(e)),
                        }
                    }
                });
                let per = if n_ok > 0 { format!(", {:.0} ms per input", ms / n_ok as f64) } else { String::new() };
                self.run_info.set(format!(
                    "{}{n_ok} of {n} predicted in {:.1} s{per}",
                    if cancelled { "Cancelled: " } else { "" },
                    ms / 1000.0
                ));
                self.running.set(None);
                self.save_results(false);
            }
            FromWorker::Piece { id, text } => {
                let (with, plain) = self.gen_ids.get_untracked();
                if with == Some(id) {
                    self.generated.update(|g| g.push_str(&text));
                } else if plain == Some(id) {
                    self.generated_plain.update(|g| g.push_str(&text));
                }
            }
            FromWorker::Generated { id, tokens, ms, error, on_gpu } => {
                let (with, plain) = self.gen_ids.get_untracked();
                let info = match error {
                    Some(e) => format!("Error: {e}"),
                    None => format!(
                        "{tokens} tokens in {:.1} s ({:.1} tokens/s) on {}",
                        ms / 1000.0,
                        tokens as f64 * 1000.0 / ms.max(1.0),
                        if on_gpu { "WebGPU" } else { "the CPU" }
                    ),
                };
                if with == Some(id) {
                    self.gen_info.set(info);
                    self.gen_ids.set((None, plain));
                } else if plain == Some(id) {
                    self.gen_plain_info.set(info);
                    self.gen_ids.set((with, None));
                }
            }
            // Only the benchmark view (`?bench`, its own worker) asks for these.
            FromWorker::BenchReport { .. } => {}
            FromWorker::Nearest { tag, centred, vectors, ms, error } => {
                self.nearest.set(match error {
                    Some(error) => Nearest::Failed { tag, error },
                    None => Nearest::Done { tag, centred, vectors, ms },
                });
            }
        }
    }

    fn save_results(self, running: bool) {
        self.last_save.set(now_ms());
        storage::save_results(&SavedResults {
            tag: self.results_tag.get_untracked(),
            target: self.results_target.get_untracked(),
            info: self.run_info.get_untracked(),
            rows: self.results.get_untracked(),
            running,
        });
    }

    /// The names of the loaded tags written as `<Name>` in `prompt`, removed.
    fn without_tags(self, prompt: &str) -> String {
        let mut out = prompt.to_string();
        for t in self.tags.get_untracked() {
            out = out.replace(&format!("<{}> ", t.name), "").replace(&format!("<{}>", t.name), "");
        }
        out
    }

    fn next_id(self) -> u32 {
        let id = self.next_id.get_untracked();
        self.next_id.set(id + 1);
        id
    }

    /// Generates from the prompt as written and, when it has tags, from the prompt without them.
    fn generate(self) {
        let max_tokens = self.max_tokens.get_untracked().trim().parse::<usize>().unwrap_or(32).clamp(1, 512);
        let temperature = self.temperature.get_untracked().trim().parse::<f64>().unwrap_or(0.0).max(0.0);
        let prompt = self.prompt.get_untracked();
        let plain = self.without_tags(&prompt);
        let seed = js_sys::Date::now() as u64;
        let with_id = self.next_id();
        let plain_id = (plain != prompt).then(|| self.next_id());
        self.generated.set(String::new());
        self.generated_plain.set(String::new());
        self.gen_info.set(String::new());
        self.gen_plain_info.set(if plain_id.is_none() {
            "The prompt has no tag, so there is nothing to compare: write one, e.g. <SMILES>, or use the example.".into()
        } else {
            String::new()
        });
        self.gen_ids.set((Some(with_id), plain_id));
        post(&ToWorker::Generate { id: with_id, prompt, max_tokens, temperature, seed }, None);
        if let Some(id) = plain_id {
            post(&ToWorker::Generate { id, prompt: plain, max_tokens, temperature, seed }, None);
        }
    }

    fn set_tags(self, tags: Vec<TagInfo>, errors: Vec<String>) {
        let current = self.selected.get_untracked();
        let usable: Vec<&TagInfo> = tags.iter().filter(|t| t.function).collect();
        if !usable.iter().any(|t| t.name == current) {
            // A new user starts with a tag that needs nothing but the list (no protein box).
            let first = usable
                .iter()
                .find(|t| t.problem.is_none() && t.slots.len() == 1)
                .or(usable.iter().find(|t| t.problem.is_none()))
                .or(usable.first());
            self.selected.set(first.map(|t| t.name.clone()).unwrap_or_default());
        }
        let inspected = self.inspect_tag.get_untracked();
        if !tags.iter().any(|t| t.name == inspected) {
            let sel = self.selected.get_untracked();
            self.inspect_tag.set(if sel.is_empty() { tags.first().map(|t| t.name.clone()).unwrap_or_default() } else { sel });
        }
        // A re-added tag may have new vectors.
        self.nearest.set(Nearest::None);
        self.tags.set(tags);
        self.tag_errors.set(errors);
    }

    fn run(self) {
        let Some(tag) = self.selected_tag() else { return };
        let text = self.input.get_untracked();
        let plan = Plan::new(&tag, &text);
        let Ok(records) = plan.records else { return };
        let id = self.next_id();
        let protein = self.protein.get_untracked().trim().to_string();
        let items: Vec<Vec<String>> = records
            .iter()
            .map(|r| (0..tag.slots.len()).map(|i| if i == plan.list_slot { r.text.clone() } else { protein.clone() }).collect())
            .collect();
        self.results.set(
            records
                .into_iter()
                .enumerate()
                .map(|(n, r)| Row { n, input: r.text, name: r.name, value: None, error: None })
                .collect(),
        );
        self.progress.set((0, items.len()));
        self.progress_base.set(None);
        self.running.set(Some(id));
        self.results_tag.set(tag.name.clone());
        self.results_target.set(tag.target.clone());
        self.run_info.set(String::new());
        self.copied.set(None);
        self.show_all.set(false);
        self.save_results(true);
        post(&ToWorker::Predict { id, tag: tag.name, items }, None);
        if self.lose_gpu {
            post(&ToWorker::LoseGpuDevice, None);
        }
    }

    /// Files from a picker or a drop: tag files, a model file, or inputs (by extension).
    fn open_files(self, files: FileList, target: Drop) {
        for i in 0..files.length() {
            let Some(file) = files.get(i) else { continue };
            let name = file.name().to_lowercase();
            if name.ends_with(".safetensors") {
                self.add_tag_file(file);
            } else if name.ends_with(".gguf") {
                self.load_model_file(file);
            } else {
                spawn_local(async move {
                    if let Ok(text) = JsFuture::from(file.text()).await {
                        let text = text.as_string().unwrap_or_default();
                        match target {
                            Drop::Protein => self.protein.set(text),
                            Drop::Inputs => self.input.set(text),
                        }
                    }
                });
            }
        }
    }

    fn add_tag_file(self, file: File) {
        spawn_local(async move {
            match JsFuture::from(file.array_buffer()).await {
                Ok(buf) => post(&ToWorker::AddTag { file: file.name() }, Some(Uint8Array::new(&buf))),
                Err(e) => self.tag_errors.set(vec![format!("{}: cannot read the file: {e:?}", file.name())]),
            }
        });
    }

    /// Runs the model where the user chose: the worker starts again (the model comes from the
    /// browser's cache) and the choice is remembered.
    fn choose_backend(self, choice: BackendChoice) {
        if choice == self.backend_choice.get_untracked() {
            return;
        }
        self.backend_choice.set(choice);
        storage::set(storage::BACKEND, choice.name());
        self.backend.set("—".into());
        self.spawn_worker(self.weights.get_untracked());
    }

    fn load_model_file(self, file: File) {
        if self.state.get_untracked() != "ready" || self.running.get_untracked().is_some() {
            self.model_error.set("Wait until the model is ready and no run is going, then open the file again.".into());
            return;
        }
        // Refused before it is read: a file too large would take the tab's memory with it.
        if let Err(e) = crate::model::gguf::check_model_size(file.size() as u64) {
            self.model_error.set(format!("{}: {e}", file.name()));
            return;
        }
        self.state.set("loading");
        self.model_error.set(String::new());
        self.status.set(format!("Reading {}…", file.name()));
        let weights = self.weights.get_untracked();
        let backend = self.backend_choice.get_untracked();
        spawn_local(async move {
            match JsFuture::from(file.array_buffer()).await {
                Ok(buf) => post(&ToWorker::LoadModel { file: file.name(), weights, backend }, Some(Uint8Array::new(&buf))),
                Err(e) => {
                    self.model_error.set(format!("{}: cannot read the file: {e:?}", file.name()));
                    self.state.set("ready");
                    self.status.set("Model ready".into());
                }
            }
        });
    }
}

/// Where dropped text files go.
#[derive(Clone, Copy)]
enum Drop {
    Inputs,
    Protein,
}

/// One line (or FASTA record) of the text box, checked.
struct Checked {
    line: usize,
    text: String,
    /// What followed the SMILES on its line (ignored by the model, shown in the table).
    name: String,
    check: Result<(), String>,
}

/// How the text box maps onto a function tag's inputs.
struct Plan {
    /// The slot the text box feeds; the others (a protein) come from the protein box.
    list_slot: usize,
    needs_protein: bool,
    list_kind: &'static str,
    /// The records of the text box, or why the text could not be read.
    records: Result<Vec<Checked>, String>,
}

impl Plan {
    fn new(tag: &TagInfo, text: &str) -> Self {
        let list_slot = tag.slots.iter().rposition(|s| !s.protein).unwrap_or(tag.slots.len().saturating_sub(1));
        let needs_protein = tag.slots.len() > 1 && tag.slots.iter().enumerate().any(|(i, s)| i != list_slot && s.protein);
        let slot = tag.slots.get(list_slot);
        let kind = slot.map(|s| s.kind()).unwrap_or(crate::tags::InputType::Smiles);
        let input_kind = if slot.is_some_and(|s| s.protein) { InputKind::Protein } else { InputKind::Smiles };
        let lines: Vec<&str> = text.lines().collect();
        let records = if text.trim().is_empty() {
            Ok(vec![])
        } else {
            read_records(text, None, None, input_kind).map_err(|e| e.to_string()).map(|recs| {
                recs.into_iter()
                    .map(|r| {
                        let check = render_input(kind, &r.text).map(|_| ());
                        let name = lines
                            .get(r.line.wrapping_sub(1))
                            .map(|l| l.trim())
                            .and_then(|l| l.strip_prefix(r.text.as_str()))
                            .filter(|rest| rest.starts_with(char::is_whitespace))
                            .map(|rest| rest.trim().to_string())
                            .unwrap_or_default();
                        Checked { line: r.line, text: r.text, name, check }
                    })
                    .collect()
            })
        };
        Self {
            list_slot,
            needs_protein,
            list_kind: if input_kind == InputKind::Protein {
                "protein sequences (one per line, or FASTA)"
            } else {
                "SMILES (one per line; a name after it is kept as a label)"
            },
            records,
        }
    }
}

fn fmt_mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn files_of(ev: &DragEvent) -> Option<FileList> {
    ev.data_transfer().and_then(|d| d.files()).filter(|f| f.length() > 0)
}

fn drag_has_files(ev: &DragEvent) -> bool {
    ev.data_transfer().is_some_and(|d| d.types().iter().any(|t| t.as_string().as_deref() == Some("Files")))
}

/// Mounts the page.
pub fn mount() {
    console_error_panic_hook::set_once();
    if bench::requested() {
        leptos::mount::mount_to_body(bench::BenchPage);
        return;
    }
    leptos::mount::mount_to_body(Page);
}

#[component]
fn Page() -> impl IntoView {
    let app = App::new();
    let weights = if query("weights").is_some_and(|w| w == "quantized" || w == "q4") {
        WeightsChoice::Quantized
    } else {
        WeightsChoice::F32
    };
    app.spawn_worker(weights);
    app.offline.start();
    spawn_local(async move {
        if let Ok(text) = fetch_text(CARDS_URL).await {
            app.cards.set(serde_json::from_str(&text).unwrap_or_default());
        }
    });

    // What survives a reload.
    Effect::new(move |_| storage::set(storage::INPUT, &app.input.get()));
    Effect::new(move |_| storage::set(storage::PROTEIN, &app.protein.get()));
    Effect::new(move |_| {
        let tag = app.selected.get();
        if !tag.is_empty() {
            storage::set(storage::TAG, &tag);
        }
    });

    // Files dropped anywhere on the page: tag files, a model, or an input list.
    let on_dragover = window_event_listener(leptos::ev::dragover, move |ev: DragEvent| {
        if drag_has_files(&ev) {
            ev.prevent_default();
            app.dragging.set(true);
        }
    });
    let on_dragleave = window_event_listener(leptos::ev::dragleave, move |ev: DragEvent| {
        if ev.related_target().is_none() {
            app.dragging.set(false);
        }
    });
    let on_drop = window_event_listener(leptos::ev::drop, move |ev: DragEvent| {
        app.dragging.set(false);
        if let Some(files) = files_of(&ev) {
            ev.prevent_default();
            app.open_files(files, Drop::Inputs);
        }
    });
    // The page lives as long as the tab: keep the listeners.
    std::mem::forget((on_dragover, on_dragleave, on_drop));

    let plan = Memo::new(move |_| {
        app.selected_tag().map(|t| {
            let p = Plan::new(&t, &app.input.get());
            let valid = p.records.as_ref().map(|r| r.iter().filter(|x| x.check.is_ok()).count()).unwrap_or(0);
            let total = p.records.as_ref().map(|r| r.len()).unwrap_or(0);
            let errors: Vec<String> = match &p.records {
                Ok(r) => r.iter().filter_map(|c| c.check.as_ref().err().map(|e| format!("line {}: {e}", c.line))).collect(),
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
    // Usable function tags by what they take, for the example buttons.
    let tag_taking = move |protein: bool, smiles: bool| {
        let current = app.selected.get();
        let mut fits: Vec<TagInfo> = app
            .tags
            .get()
            .into_iter()
            .filter(|t| t.function && t.problem.is_none())
            .filter(|t| t.slots.iter().any(|s| s.protein) == protein && t.slots.iter().any(|s| !s.protein) == smiles)
            .collect();
        // The selected tag first, if it fits.
        fits.sort_by_key(|t| t.name != current);
        fits.into_iter().next()
    };

    let on_tag_files = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        if let Some(files) = input.files() {
            app.open_files(files, Drop::Inputs);
        }
        input.set_value("");
    };
    let on_input_file = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        if let Some(files) = input.files() {
            app.open_files(files, Drop::Inputs);
        }
        input.set_value("");
    };
    let sorted = Memo::new(move |_| {
        let (key, asc) = app.sort.get();
        results::sorted(&app.results.get(), key, asc)
    });
    let sort_header = move |key: SortKey, label: Signal<String>, class: &'static str| {
        view! {
            <th class=class data-testid=format!("sort-{}", key.id())
                aria-sort=move || match app.sort.get() { (k, true) if k == key => "ascending", (k, false) if k == key => "descending", _ => "none" }
                on:click=move |_| app.sort.update(|s| *s = if s.0 == key { (key, !s.1) } else { (key, true) })>
                <button class="sort" type="button">{move || label.get()}
                    <span class="arrow">{move || match app.sort.get() { (k, true) if k == key => "▲", (k, false) if k == key => "▼", _ => "↕" }}</span>
                </button>
            </th>
        }
    };
    let value_label = Signal::derive(move || {
        let t = app.results_target.get();
        if t.is_empty() { "prediction".to_string() } else { format!("prediction ({t})") }
    });

    view! {
        <header>
            <h1>"tagllm"</h1>
            <p class="lead">"Molecular and protein property predictions from a small language model (SmolLM2-135M) with learned "<em>"tags"</em>" — computed in your browser; nothing leaves this device."</p>
        </header>
        <div class="drop-overlay" class:shown=move || app.dragging.get()>
            <p>"Drop tag files (.safetensors), a model (.gguf), or a list of inputs (.smi, .csv, .fasta, .txt)"</p>
        </div>

        <section class="card">
            <div class="row">
                <span class="label">"Model"</span>
                <span data-testid="model-status" data-state=move || app.state.get() class=move || format!("status {}", app.state.get())>
                    {move || app.status.get()}
                </span>
                <span class="spacer"></span>
                <label class="button secondary" class:disabled=move || app.state.get() != "ready"
                    title="A GGUF file of the same model family (SmolLM2 / Llama); tags only work on the file they were trained on">
                    "Open a model file…"
                    <input type="file" data-testid="model-file" accept=".gguf"
                        disabled=move || app.state.get() != "ready"
                        on:change=move |ev| {
                            let input: HtmlInputElement = event_target(&ev);
                            if let Some(files) = input.files() { app.open_files(files, Drop::Inputs) }
                            input.set_value("");
                        } />
                </label>
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
            <p class="error small" data-testid="model-error">{move || app.model_error.get()}</p>
            <dl class="statusline" data-testid="status-line">
                <dt>"Backend"</dt>
                <dd>
                    <select data-testid="backend-choice" aria-label="Where the model runs"
                        prop:value=move || app.backend_choice.get().name()
                        prop:disabled=move || app.state.get() != "ready" || app.running.get().is_some()
                        on:change=move |ev| app.choose_backend(BackendChoice::parse(&event_target_value(&ev)))>
                        <option value="auto">"Auto"</option>
                        <option value="gpu">"WebGPU"</option>
                        <option value="cpu">"CPU"</option>
                    </select>
                    " "
                    <span data-testid="backend">{move || app.backend.get()}</span>
                </dd>
                <dt>"Model"</dt>
                <dd data-testid="model-version">{move || {
                    let m = app.model.get();
                    if m.sha256.is_empty() { "—".to_string() } else {
                        let w = match app.weights.get() { WeightsChoice::F32 => "f32", WeightsChoice::Quantized => "quantised" };
                        format!("{} · sha256 {}… · {w} · {}", m.name, short(&m.sha256, 12), m.source)
                    }
                }}</dd>
                <dt>"Tags"</dt>
                <dd data-testid="tag-versions">{move || {
                    let tags = app.tags.get();
                    if tags.is_empty() { return "—".to_string() }
                    tags.iter().map(|t| format!("<{}> v{} {}", t.name, t.format_version, short(&t.vectors_sha256, 8))).collect::<Vec<_>>().join(" · ")
                }}</dd>
                <dt>"Network"</dt>
                <dd data-testid="network-status"
                    data-online=move || app.offline.online.get().map(|o| o.to_string()).unwrap_or_else(|| "unknown".into())
                    data-offline-ready=move || app.offline.ready.get().to_string()
                    class=move || match app.offline.online.get() { Some(false) => "net offline", _ if app.offline.ready.get() => "net cached", _ => "net online" }>
                    {move || app.offline.describe()}
                </dd>
            </dl>
            <div class="small" data-testid="load-info">{move || app.load_info.get()}</div>
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
                <span class="drop-zone small" data-testid="tag-drop">"or drop .safetensors files here"</span>
            </div>
            {move || app.selected_tag().map(|t| view! {
                <p class="small tag-info">
                    {t.description.clone()}
                    {(!t.metrics.is_empty()).then(|| format!(" Test metrics: {}.", t.metrics))}
                    {t.problem.clone().map(|p| view! { <span class="error">{format!(" Cannot predict: {p}")}</span> })}
                </p>
                {(!t.template.is_empty()).then(|| view! {
                    <p class="small template" data-testid="template">
                        "Prompt: "<code>{t.template.replace('\n', " ⏎ ")}</code>
                        {(!t.requires.is_empty()).then(|| format!(" · domain tags: {}", t.requires.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(", ")))}
                    </p>
                })}
            })}
            {move || (app.state.get() == "ready" && !app.tags.get().iter().any(|t| t.function)).then(|| view! {
                <p class="error">"No function tags are loaded. Add tag files (.safetensors) above."</p>
            })}
            <ul class="error small" data-testid="tag-errors">
                {move || app.tag_errors.get().into_iter().map(|e| view! { <li>{e}</li> }).collect_view()}
            </ul>

            <div class="row examples">
                <span class="small">"Examples:"</span>
                {move || tag_taking(false, true).map(|t| view! {
                    <button type="button" class="link" data-testid="example-smiles"
                        on:click=move |_| {
                            app.selected.set(t.name.clone());
                            app.input.set(SMILES_EXAMPLE.into());
                        }>"aspirin, caffeine, ibuprofen, paracetamol + a broken line"</button>
                })}
                {move || tag_taking(true, true).map(|t| view! {
                    <button type="button" class="link" data-testid="example-affinity"
                        on:click=move |_| {
                            app.selected.set(t.name.clone());
                            app.protein.set(KINASE_EXAMPLE.into());
                            app.input.set(LIGANDS_EXAMPLE.into());
                        }>"CDK2 kinase + 5 measured ligands"</button>
                })}
                {move || tag_taking(true, false).map(|t| view! {
                    <button type="button" class="link" data-testid="example-proteins"
                        on:click=move |_| {
                            app.selected.set(t.name.clone());
                            app.input.set(PROTEINS_EXAMPLE.into());
                        }>"two kinases (FASTA)"</button>
                })}
                <button type="button" class="link" data-testid="clear-input" on:click=move |_| app.input.set(String::new())>"clear"</button>
            </div>

            <Show when=needs_protein>
                <label class="label block" for="protein">"Protein sequence (one-letter codes or FASTA)"</label>
                <textarea id="protein" data-testid="protein-input" rows="3" spellcheck="false"
                    placeholder="MKTAYIAKQRQISFVKSHFSRQ…"
                    prop:value=move || app.protein.get()
                    on:input=move |ev| app.protein.set(event_target_value(&ev))
                    on:drop=move |ev: DragEvent| {
                        if let Some(files) = files_of(&ev) {
                            ev.prevent_default();
                            ev.stop_propagation();
                            app.dragging.set(false);
                            app.open_files(files, Drop::Protein);
                        }
                    }></textarea>
                <p class="error small">{move || protein_check.get()}</p>
            </Show>

            <label class="label block" for="input">
                {move || format!("Inputs: {}", plan.get().map(|p| p.1).unwrap_or("one per line"))}
            </label>
            <textarea id="input" data-testid="input" rows="8" spellcheck="false"
                placeholder="CCO ethanol\nCC(=O)Oc1ccccc1C(=O)O aspirin\nc1ccccc1 benzene\n\n(or drop a .smi, .csv, .fasta or .txt file here)"
                prop:value=move || app.input.get()
                on:input=move |ev| app.input.set(event_target_value(&ev))></textarea>
            <div class="row small">
                <span data-testid="validation">{move || plan.get().map(|p| {
                    let invalid = p.3 - p.2;
                    if p.3 == 0 { "No inputs yet.".to_string() } else { format!("{} inputs: {} valid, {invalid} invalid (invalid ones are reported, the rest predicted)", p.3, p.2) }
                })}</span>
                <span class="spacer"></span>
                <label class="button secondary">
                    "Load a file…"
                    <input type="file" data-testid="input-file" accept=".smi,.txt,.csv,.tsv,.fasta,.fa,.faa" on:change=on_input_file />
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
                    <span class="small" data-testid="run-rate">{move || {
                        let (d, t) = app.progress.get();
                        let (t0, base) = app.progress_base.get()?;
                        let secs = (now_ms() - t0) / 1000.0;
                        if d <= base || secs <= 0.0 { return Some("starting…".to_string()); }
                        let rate = (d - base) as f64 / secs;
                        Some(format!("{rate:.1} inputs/s · about {} left", fmt_secs((t - d) as f64 / rate)))
                    }}</span>
                    <button data-testid="cancel" class="button secondary" on:click=move |_| {
                        if let Some(id) = app.running.get_untracked() { post(&ToWorker::Cancel { id }, None) }
                    }>"Cancel"</button>
                </Show>
                <span class="small" data-testid="run-info">{move || app.run_info.get()}</span>
            </div>
        </section>

        <Show when=move || !app.results.get().is_empty()>
            <section class="card" data-testid="results-card">
                <div class="row">
                    <h2>{move || format!("Results — {}", app.results_tag.get())}</h2>
                    <button data-testid="copy" class="button secondary" type="button"
                        data-copied=move || app.copied.get().map(|c| c.1)
                        title="Copy the table (tab-separated) to paste into a spreadsheet"
                        on:click=move |_| {
                            let tsv = results::tsv(&sorted.get_untracked());
                            let n = app.results.get_untracked().len();
                            let text = tsv.clone();
                            results::copy_text(tsv, move |r| app.copied.set(Some(match r {
                                Ok(()) => (format!("Copied {n} rows"), text),
                                Err(e) => (format!("Copy failed: {e}"), String::new()),
                            })));
                        }>{move || app.copied.get().map(|c| c.0).unwrap_or_else(|| "Copy table".into())}</button>
                    <button data-testid="download-csv" class="button secondary"
                        on:click=move |_| results::download_csv(&app.results_tag.get_untracked(), &sorted.get_untracked())>"Download CSV"</button>
                </div>
                <Chart rows=Signal::derive(move || app.results.get()) target=Signal::derive(move || app.results_target.get()) />
                <table data-testid="results">
                    <thead><tr>
                        {sort_header(SortKey::Order, Signal::derive(|| "#".to_string()), "num order")}
                        {sort_header(SortKey::Input, Signal::derive(|| "input".to_string()), "input")}
                        {sort_header(SortKey::Value, value_label, "num")}
                        {sort_header(SortKey::Status, Signal::derive(|| "status".to_string()), "")}
                    </tr></thead>
                    <tbody>
                        {move || sorted.get().into_iter().take(if app.show_all.get() { usize::MAX } else { SHOWN_ROWS }).map(|r| {
                            let shown = r.value.map(|v| format!("{v:.4}")).unwrap_or_default();
                            let status = r.status().to_string();
                            let (input, name, error) = (r.input.clone(), r.name.clone(), r.error.clone().unwrap_or_default());
                            view! {
                                <tr data-testid="result-row" data-input=r.input.clone()
                                    data-value=r.value.map(|v| v.to_string())
                                    data-error=r.error.clone()
                                    class=status.clone()>
                                    <td class="num">{r.n + 1}</td>
                                    <td class="mono">{input}{(!name.is_empty()).then(|| view! { <span class="name">{name}</span> })}</td>
                                    <td class="num">{shown}</td>
                                    <td class="state">{match status.as_str() {
                                        "ok" => view! { <span class="ok">"✓"</span> }.into_any(),
                                        "pending" => view! { <span class="pending">"pending…"</span> }.into_any(),
                                        _ => view! { <span class="error">{error}</span> }.into_any(),
                                    }}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
                {move || {
                    let n = app.results.get().len();
                    (n > SHOWN_ROWS && !app.show_all.get()).then(|| view! {
                        <p class="small">{format!("The first {SHOWN_ROWS} of {n} rows in this order (sort to see others; the CSV and the copy hold all). ")}
                            <button type="button" class="link" data-testid="show-all" on:click=move |_| app.show_all.set(true)>{format!("show all {n}")}</button></p>
                    })
                }}
            </section>
        </Show>

        <details class="card" data-testid="generation">
            <summary><h2 class="inline">"Generate text"</h2>
                <span class="small">" — the base model continues a prompt; a tag's name in angle brackets (e.g. <SMILES>) splices its vectors in, and the same prompt without the tag runs beside it"</span></summary>
            <textarea data-testid="prompt" rows="3" spellcheck="false"
                prop:value=move || app.prompt.get()
                on:input=move |ev| app.prompt.set(event_target_value(&ev))></textarea>
            <div class="row small">
                <label>"max tokens "<input data-testid="max-tokens" type="number" min="1" max="512" class="num-input"
                    prop:value=move || app.max_tokens.get() on:input=move |ev| app.max_tokens.set(event_target_value(&ev)) /></label>
                <label>"temperature "<input data-testid="temperature" type="number" min="0" max="2" step="0.1" class="num-input"
                    prop:value=move || app.temperature.get() on:input=move |ev| app.temperature.set(event_target_value(&ev)) /></label>
                <select data-testid="insert-tag" title="Insert a tag at the end of the prompt"
                    on:change=move |ev| {
                        let name = event_target_value(&ev);
                        if !name.is_empty() { app.prompt.update(|p| { if !p.ends_with(' ') && !p.is_empty() { p.push(' ') } p.push_str(&format!("<{name}> ")) }); }
                        event_target::<web_sys::HtmlSelectElement>(&ev).set_value("");
                    }>
                    <option value="">"insert a tag…"</option>
                    {move || app.tags.get().into_iter().map(|t| view! { <option value=t.name.clone()>{format!("<{}>", t.name)}</option> }).collect_view()}
                </select>
                <button type="button" class="link" data-testid="generation-example"
                    on:click=move |_| { app.prompt.set(GENERATION_EXAMPLE.into()); app.max_tokens.set("16".into()); }>"example with a tag"</button>
                <span class="spacer"></span>
                <button data-testid="generate" class="button"
                    disabled=move || app.state.get() != "ready" || app.gen_ids.get() != (None, None) || app.running.get().is_some()
                    on:click=move |_| app.generate()>"Generate"</button>
            </div>
            <div class="side-by-side">
                <div>
                    <h3>"As written (with tags)"</h3>
                    <pre data-testid="generated" data-state=move || if app.gen_ids.get().0.is_some() { "running" } else { "done" }>
                        <span class="prompt-echo">{move || app.prompt.get()}</span><span data-testid="generated-text">{move || app.generated.get()}</span>
                    </pre>
                    <p class="small" data-testid="gen-info">{move || app.gen_info.get()}</p>
                </div>
                <div>
                    <h3>"Without its tags"</h3>
                    <pre data-testid="generated-plain-box" data-state=move || if app.gen_ids.get().1.is_some() { "running" } else { "done" }>
                        <span class="prompt-echo">{move || app.without_tags(&app.prompt.get())}</span><span data-testid="generated-plain">{move || app.generated_plain.get()}</span>
                    </pre>
                    <p class="small" data-testid="gen-plain-info">{move || app.gen_plain_info.get()}</p>
                </div>
            </div>
        </details>

        <Inspector app=app />

        <footer class="small">
            "Tag-LLM (Shen et al., ICML 2024). Predictions from untrained or weak tags are not measurements; see each tag's card and test metrics in the inspector."
        </footer>
    }
}
