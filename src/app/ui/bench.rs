//! The benchmark view, `?bench`: the figures of `tagllm bench` ([`crate::bench`]) measured in the
//! page's own inference worker, for `scripts/bench-browser.sh` (which runs `@wllama/wllama` on the
//! same file and prompts beside it) and for anyone who wants their browser's numbers.
//!
//! 1. Cold load: the model's Cache Storage entry is deleted, a fresh worker downloads, checks and
//!    stores it (timed from `new Worker` to `Ready`, so the worker's wasm start-up is included).
//! 2. Warm load: that worker is terminated and a new one loads the model from Cache Storage.
//! 3. `ToWorker::Bench` to the second worker: matrix products, prefill at 50 and 512 tokens,
//!    32 greedy decoding steps after 16 tokens, `<QED>` over the 100 benchmark SMILES
//!    (`tests/fixtures/bench_smiles.txt`), and the worker's wasm memory.
//! 4. The page's memory from `performance.measureUserAgentSpecificMemory()` where the browser
//!    allows it (cross-origin isolated pages only).
//!
//! The figures are shown as a table and as JSON in `<pre data-testid="bench-json">` (its
//! `data-state` is running / done / error). URL options: `n=N` molecules (default 100), `tag=NAME`
//! (default QED), `quick` (one load from wherever the model is, no matrix products, prefill at 50
//! tokens only, 8 decoding steps: the end-to-end test's short check), `weights=quantized`,
//! `backend=auto|gpu|cpu` (as the page: with the model on a GPU the report adds its figures under
//! `gpu` — adapter, prefill, molecules/s — so any browser on any GPU can be measured).
//! Only own-origin connections, no inline script or style: it runs under the page's CSP.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Array, Function, Promise, Reflect};
use leptos::prelude::*;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{ErrorEvent, MessageEvent, Worker};

use super::{query, MODEL_URL, TAGS_URL, WORKER_URL};
use crate::app::protocol::{BackendChoice, FromWorker, ToWorker, WeightsChoice};
use crate::app::worker::MODEL_CACHE;
use crate::model::DEFAULT_MODEL_SHA256;

/// Whether the page was opened as the benchmark view (`?bench`).
pub fn requested() -> bool {
    let Ok(search) = window().location().search() else { return false };
    web_sys::UrlSearchParams::new_with_str(&search).map(|p| p.has("bench")).unwrap_or(false)
}

#[derive(Clone)]
struct Options {
    molecules: usize,
    tag: String,
    quick: bool,
    weights: WeightsChoice,
    backend: BackendChoice,
}

impl Options {
    fn from_url() -> Self {
        let quick = window()
            .location()
            .search()
            .ok()
            .and_then(|s| web_sys::UrlSearchParams::new_with_str(&s).ok())
            .is_some_and(|p| p.has("quick"));
        Self {
            molecules: query("n").and_then(|n| n.parse().ok()).unwrap_or(100),
            tag: query("tag").filter(|t| !t.is_empty()).unwrap_or_else(|| "QED".into()),
            quick,
            backend: BackendChoice::parse(&query("backend").unwrap_or_default()),
            weights: if query("weights").is_some_and(|w| w == "quantized" || w == "q4") {
                WeightsChoice::Quantized
            } else {
                WeightsChoice::F32
            },
        }
    }
}

fn perf_now() -> f64 {
    window().performance().map(|p| p.now()).unwrap_or_else(js_sys::Date::now)
}

fn weights_name(w: WeightsChoice) -> &'static str {
    match w {
        WeightsChoice::F32 => "f32",
        WeightsChoice::Quantized => "quantized",
    }
}

/// Messages from one worker, awaited one at a time.
#[derive(Default)]
struct Inbox {
    queue: RefCell<VecDeque<FromWorker>>,
    wake: RefCell<Option<Function>>,
}

impl Inbox {
    fn push(&self, msg: FromWorker) {
        self.queue.borrow_mut().push_back(msg);
        if let Some(wake) = self.wake.borrow_mut().take() {
            let _ = wake.call0(&JsValue::NULL);
        }
    }
}

/// The worker's message and error handlers, kept alive as long as it runs.
type Handlers = (Closure<dyn FnMut(MessageEvent)>, Closure<dyn FnMut(ErrorEvent)>);

/// An inference worker of its own (the benchmark does not share the page's), terminated on drop.
struct BenchWorker {
    worker: Worker,
    inbox: Rc<Inbox>,
    _handlers: Handlers,
}

impl BenchWorker {
    fn start() -> Result<Self, String> {
        let worker = Worker::new(WORKER_URL).map_err(|e| format!("cannot start the inference worker: {e:?}"))?;
        let inbox = Rc::new(Inbox::default());
        let i = inbox.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            if let Some(msg) = ev.data().as_string().and_then(|t| serde_json::from_str::<FromWorker>(&t).ok()) {
                i.push(msg);
            }
        });
        let i = inbox.clone();
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |ev: ErrorEvent| {
            i.push(FromWorker::Fatal { message: format!("the inference worker stopped: {}", ev.message()) });
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self { worker, inbox, _handlers: (on_message, on_error) })
    }

    fn post(&self, msg: &ToWorker) {
        let text = serde_json::to_string(msg).expect("messages serialise");
        let _ = self.worker.post_message(&JsValue::from_str(&text));
    }

    async fn next(&self) -> FromWorker {
        loop {
            if let Some(msg) = self.inbox.queue.borrow_mut().pop_front() {
                return msg;
            }
            let inbox = self.inbox.clone();
            let wait = Promise::new(&mut |resolve, _| *inbox.wake.borrow_mut() = Some(resolve));
            let _ = JsFuture::from(wait).await;
        }
    }
}

impl Drop for BenchWorker {
    fn drop(&mut self) {
        self.worker.set_onmessage(None);
        self.worker.set_onerror(None);
        self.worker.terminate();
    }
}

/// Starts a worker and loads the model: (the worker, what the load took and where from).
async fn load(weights: WeightsChoice, backend: BackendChoice, status: RwSignal<String>) -> Result<(BenchWorker, Value), String> {
    let t0 = perf_now();
    let worker = BenchWorker::start()?;
    loop {
        match worker.next().await {
            FromWorker::Hello => worker.post(&ToWorker::Init {
                model_url: MODEL_URL.into(),
                model_sha256: DEFAULT_MODEL_SHA256.into(),
                tags_url: TAGS_URL.into(),
                weights,
                // The CPU (WebAssembly) figures are always measured (against wllama's); the GPU's
                // too when the worker runs on one (`backend=`, default Auto as in the page).
                backend,
            }),
            FromWorker::Status { text } => status.set(text),
            FromWorker::Download { loaded, total } => {
                status.set(format!("Downloading the model: {:.1} of {:.1} MB", loaded as f64 / 1e6, total as f64 / 1e6))
            }
            FromWorker::Ready { weights, load_ms, from_cache, model, tags, .. } => {
                let page_ms = perf_now() - t0;
                let tags: Vec<String> = tags.into_iter().map(|t| t.name).collect();
                let info = json!({
                    "ms": page_ms,
                    "worker_ms": load_ms,
                    "from_cache": from_cache,
                    "source": model.source,
                    "weights": weights_name(weights),
                    "tags": tags,
                });
                return Ok((worker, info));
            }
            FromWorker::Fatal { message } => return Err(message),
            _ => {}
        }
    }
}

/// Deletes the model from Cache Storage (so that the next load downloads it); whether it was there.
async fn forget_cached_model() -> Result<bool, String> {
    let caches = window().caches().map_err(|e| format!("no Cache Storage: {e:?}"))?;
    let cache: web_sys::Cache =
        JsFuture::from(caches.open(MODEL_CACHE)).await.map_err(|e| format!("{e:?}"))?.unchecked_into();
    let deleted = JsFuture::from(cache.delete_with_str(MODEL_URL)).await.map_err(|e| format!("{e:?}"))?;
    Ok(deleted.as_bool().unwrap_or(false))
}

/// `performance.measureUserAgentSpecificMemory()` (the page and its workers), where the browser
/// offers it: cross-origin isolated pages only. Waits at most a minute.
async fn page_memory() -> Value {
    let w = window();
    let isolated = Reflect::get(&w, &"crossOriginIsolated".into()).ok().and_then(|v| v.as_bool()).unwrap_or(false);
    let Some(perf) = w.performance() else { return json!({"available": false, "why": "no performance object"}) };
    let f = Reflect::get(&perf, &"measureUserAgentSpecificMemory".into()).unwrap_or(JsValue::UNDEFINED);
    if !isolated || !f.is_function() {
        return json!({"available": false, "why": "measureUserAgentSpecificMemory needs a cross-origin isolated page (COOP + COEP headers)"});
    }
    let measured = match f.unchecked_ref::<Function>().call0(&perf).map(|p| p.unchecked_into::<Promise>()) {
        Ok(p) => p,
        Err(e) => return json!({"available": false, "why": format!("{e:?}")}),
    };
    let timeout = Promise::new(&mut |resolve, _| {
        let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 60_000);
    });
    let answer = match JsFuture::from(Promise::race(&Array::of2(&measured, &timeout))).await {
        Ok(r) if !r.is_undefined() => r,
        Ok(_) => return json!({"available": false, "why": "no answer within 60 s"}),
        Err(e) => return json!({"available": false, "why": format!("{e:?}")}),
    };
    let answer: Value = js_sys::JSON::stringify(&answer)
        .ok()
        .and_then(|s| s.as_string())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    // What it attributed where (entries of at least 1 MB).
    let breakdown: Vec<Value> = answer["breakdown"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["bytes"].as_f64().unwrap_or(0.0) >= 1e6)
        .map(|b| json!({"mb": b["bytes"].as_f64().unwrap_or(0.0) / 1e6, "attribution": b["attribution"], "types": b["types"]}))
        .collect();
    match answer["bytes"].as_f64() {
        Some(bytes) => json!({"available": true, "mb": bytes / 1e6, "breakdown": breakdown}),
        None => json!({"available": false, "why": "no answer"}),
    }
}

async fn run(opts: Options, status: RwSignal<String>) -> Result<Value, String> {
    let w = window();
    let isolated = Reflect::get(&w, &"crossOriginIsolated".into()).ok().and_then(|v| v.as_bool()).unwrap_or(false);
    let mut out = json!({
        "engine": "tagllm (this page's inference worker)",
        "user_agent": w.navigator().user_agent().unwrap_or_default(),
        "hardware_concurrency": w.navigator().hardware_concurrency(),
        "cross_origin_isolated": isolated,
        "quick": opts.quick,
    });
    if !opts.quick {
        status.set("Cold load: the model's Cache Storage entry deleted; downloading…".into());
        let was_cached = forget_cached_model().await?;
        let (worker, mut cold) = load(opts.weights, opts.backend, status).await?;
        cold["was_cached_before"] = json!(was_cached);
        drop(worker);
        out["load_cold"] = cold;
        status.set("Warm load: a new worker, the model from Cache Storage…".into());
    }
    let (worker, warm) = load(opts.weights, opts.backend, status).await?;
    out["weights"] = warm["weights"].clone();
    out[if opts.quick { "load" } else { "load_warm" }] = warm;
    let (prefill, decode_tokens) = if opts.quick { (vec![50], 8) } else { (vec![50, 512], 32) };
    worker.post(&ToWorker::Bench { molecules: opts.molecules, tag: opts.tag.clone(), kernels: !opts.quick, prefill, decode_tokens });
    let report = loop {
        match worker.next().await {
            FromWorker::Status { text } => status.set(text),
            FromWorker::BenchReport { report: Some(r), .. } => break r,
            FromWorker::BenchReport { error, .. } => return Err(error.unwrap_or_else(|| "the benchmark failed".into())),
            FromWorker::Fatal { message } => return Err(message),
            _ => {}
        }
    };
    if let (Some(o), Some(r)) = (out.as_object_mut(), report.as_object()) {
        for (k, v) in r {
            o.insert(k.clone(), v.clone());
        }
    }
    status.set("Measuring the page's memory…".into());
    out["page_memory"] = page_memory().await;
    drop(worker);
    Ok(out)
}

/// The figures as (what, value) rows.
fn rows(v: &Value) -> Vec<(String, String)> {
    let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
    let mut rows = Vec::new();
    for (key, what) in [("load_cold", "model load, cold (network)"), ("load_warm", "model load, warm (Cache Storage)"), ("load", "model load")] {
        if let Some(l) = v.get(key) {
            rows.push((
                what.to_string(),
                format!("{:.0} ms ({:.0} ms in the worker; {})", f(&l["ms"]), f(&l["worker_ms"]), l["source"].as_str().unwrap_or("")),
            ));
        }
    }
    for p in v["prefill"].as_array().into_iter().flatten() {
        rows.push((format!("prefill {} tokens", p["tokens"]), format!("{:.1} tokens/s ({:.0} ms)", f(&p["tokens_per_s"]), f(&p["ms"]))));
    }
    rows.push((format!("decode ({} greedy tokens)", v["decode_tokens"]), format!("{:.1} tokens/s", f(&v["decode_tokens_per_s"]))));
    let tag = v["molecules_tag"].as_str().unwrap_or("");
    rows.push((
        format!("<{tag}> over {} SMILES", v["molecules"]),
        match v["molecules_per_s"].as_f64() {
            Some(x) => format!("{x:.2} molecules/s"),
            None => v["molecules_error"].as_str().unwrap_or("not measured").to_string(),
        },
    ));
    rows.push((
        "worker wasm memory (after load / at the end)".into(),
        format!("{:.0} MB / {:.0} MB", f(&v["wasm_memory_mb_after_load"]), f(&v["wasm_memory_mb"])),
    ));
    let mem = &v["page_memory"];
    rows.push((
        "page memory (measureUserAgentSpecificMemory)".into(),
        match mem["mb"].as_f64() {
            Some(mb) => format!("{mb:.0} MB"),
            None if v["cross_origin_isolated"] == json!(false) => "not available (the page is not cross-origin isolated)".into(),
            None => format!("not available: {}", mem["why"].as_str().unwrap_or("")),
        },
    ));
    rows.push(("backend in use".into(), v["backend_in_use"].as_str().unwrap_or("").to_string()));
    let gpu = &v["gpu"];
    if let Some(e) = gpu["error"].as_str() {
        rows.push(("GPU".into(), format!("failed: {e}")));
    } else if gpu.is_object() {
        rows.push(("GPU adapter".into(), gpu["adapter"].as_str().unwrap_or("").to_string()));
        for p in gpu["prefill"].as_array().into_iter().flatten() {
            rows.push((format!("GPU prefill {} tokens", p["tokens"]), format!("{:.1} tokens/s ({:.0} ms)", f(&p["tokens_per_s"]), f(&p["ms"]))));
        }
        rows.push((format!("GPU <{tag}> over {} SMILES", gpu["molecules"]), format!("{:.2} molecules/s", f(&gpu["molecules_per_s"]))));
    }
    for k in v["kernels"].as_array().into_iter().flatten() {
        rows.push((
            format!("f32 matmul {}", k["name"].as_str().unwrap_or("")),
            format!("{:.3} ms, {:.2} GFLOP/s", f(&k["ms"]), f(&k["gflops"])),
        ));
    }
    rows
}

#[component]
pub fn BenchPage() -> impl IntoView {
    let opts = Options::from_url();
    let status = RwSignal::new("Starting…".to_string());
    let state = RwSignal::new("running");
    let error = RwSignal::new(String::new());
    let result = RwSignal::new(None::<Value>);
    let what = format!(
        "{} weights; <{}> over {} molecules{}",
        weights_name(opts.weights),
        opts.tag,
        opts.molecules,
        if opts.quick { "; quick check" } else { "" }
    );
    spawn_local(async move {
        match run(opts, status).await {
            Ok(v) => {
                result.set(Some(v));
                status.set("Done".into());
                state.set("done");
            }
            Err(e) => {
                error.set(e);
                status.set("The benchmark failed".into());
                state.set("error");
            }
        }
    });
    view! {
        <header>
            <h1>"tagllm — benchmark"</h1>
            <p class="lead">"The figures of "<code>"tagllm bench"</code>" in this browser: the page's inference worker (WebAssembly SIMD, one thread) on the shipped model. "{what}</p>
        </header>
        <section class="card">
            <p data-testid="bench-status" data-state=move || state.get()>{move || status.get()}</p>
            <p class="error small" data-testid="bench-error">{move || error.get()}</p>
            {move || result.get().map(|v| view! {
                <table data-testid="bench-table">
                    <thead><tr><th>"figure"</th><th>"value"</th></tr></thead>
                    <tbody>
                        {rows(&v).into_iter().map(|(k, x)| view! { <tr><td>{k}</td><td>{x}</td></tr> }).collect_view()}
                    </tbody>
                </table>
            })}
            <h3>"JSON"</h3>
            <pre class="small" data-testid="bench-json" data-state=move || state.get()>
                {move || result.get().map(|v| v.to_string()).unwrap_or_default()}
            </pre>
        </section>
        <footer class="small">
            <a href="./">"Back to the page"</a>
            " · side by side with wllama on the same file and prompts: "<code>"scripts/bench-browser.sh"</code>
        </footer>
    }
}
