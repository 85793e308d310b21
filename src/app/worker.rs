//! The inference worker: holds the model and the tag library, runs predictions off the page's
//! thread. Started by the `tagllm-worker` binary (Trunk builds it as a worker with a loader shim).

mod bench;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Cache, DedicatedWorkerGlobalScope, MessageEvent, ReadableStreamDefaultReader, Response};

use candle_core::{DType, Tensor};

use super::protocol::{BackendChoice, FromWorker, ModelInfo, Outcome, SlotInfo, TagInfo, ToWorker, WeightsChoice};
#[cfg(feature = "gpu")]
use crate::gpu::{Gpu, GpuLlama};
use crate::model::{GgufFile, Model, Sampling, Weights};
use crate::predict::Predictor;
use crate::tags::{InputType, TagLibrary};

/// The Cache Storage bucket the model file is kept in (the service worker, `web/sw.js`, serves
/// the model from it too).
pub const MODEL_CACHE: &str = "tagllm-model-v1";
/// The service worker's cache of the app shell and tags (`web/sw.js`): the worker falls back to it
/// when a fetch fails and no service worker answered (e.g. a worker not controlled by it).
pub const SHELL_CACHE: &str = "tagllm-shell-v1";
/// Inputs per sub-batch of a run: small, so that a Cancel is seen within about a second (the
/// worker yields to its event loop between sub-batches).
pub const SUB_BATCH: usize = 4;

#[derive(Default)]
struct State {
    model: Option<Rc<Model>>,
    library: Rc<TagLibrary>,
    /// The id of a prediction run the page cancelled.
    cancelled: Cell<Option<u32>>,
    /// The model on the GPU when predictions run there (taken out while a run uses it).
    #[cfg(feature = "gpu")]
    gpu: Option<GpuLlama>,
    /// What runs the forward pass, and why (shown in the page).
    backend: String,
    /// `ToWorker::LoseGpuDevice` was received: destroy the device after the next GPU pass.
    lose_gpu: Cell<bool>,
}

/// The CPU backend's name in the page.
const CPU_BACKEND: &str = "CPU (WebAssembly, SIMD)";

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn send(msg: &FromWorker) {
    let text = serde_json::to_string(msg).expect("messages serialise");
    let _ = scope().post_message(&JsValue::from_str(&text));
}

fn status(text: impl Into<String>) {
    send(&FromWorker::Status { text: text.into() });
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())))
        .unwrap_or_else(|| format!("{e:?}"))
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Entry point of the worker binary.
pub fn start() {
    console_error_panic_hook::set_once();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| {
        let data = ev.data();
        let (text, bytes) = if let Some(s) = data.as_string() {
            (s, None)
        } else if Array::is_array(&data) {
            let a: Array = data.unchecked_into();
            (a.get(0).as_string().unwrap_or_default(), a.get(1).dyn_into::<Uint8Array>().ok().map(|b| b.to_vec()))
        } else {
            return;
        };
        match serde_json::from_str::<ToWorker>(&text) {
            Ok(msg) => spawn_local(handle(msg, bytes)),
            Err(e) => web_sys::console::error_1(&format!("worker: bad message {text}: {e}").into()),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    send(&FromWorker::Hello);
}

async fn handle(msg: ToWorker, bytes: Option<Vec<u8>>) {
    match msg {
        ToWorker::Init { model_url, model_sha256, tags_url, weights, backend } => {
            if let Err(message) = init(&model_url, &model_sha256, &tags_url, weights, backend).await {
                send(&FromWorker::Fatal { message });
            }
        }
        ToWorker::LoadModel { file, weights, backend } => {
            load_local_model(&file, bytes.unwrap_or_default(), weights, backend).await
        }
        ToWorker::LoseGpuDevice => STATE.with(|s| s.borrow().lose_gpu.set(true)),
        ToWorker::Inspect { tag, k, centred } => inspect(&tag, k, centred),
        ToWorker::AddTag { file } => {
            let Some(model) = STATE.with(|s| s.borrow().model.clone()) else {
                send(&FromWorker::Tags { tags: vec![], errors: vec![format!("{file}: the model is not loaded yet")] });
                return;
            };
            let mut lib = STATE.with(|s| (*s.borrow().library).clone());
            let errors = match lib.add_bytes(&bytes.unwrap_or_default(), &file, &model.identity) {
                Ok(_) => vec![],
                Err(e) => vec![e.to_string()],
            };
            let tags = describe(&model, &lib);
            STATE.with(|s| s.borrow_mut().library = Rc::new(lib));
            send(&FromWorker::Tags { tags, errors });
        }
        ToWorker::Predict { id, tag, items } => predict(id, &tag, items).await,
        ToWorker::Cancel { id } => STATE.with(|s| s.borrow().cancelled.set(Some(id))),
        ToWorker::Generate { id, prompt, max_tokens, temperature, seed } => {
            generate(id, &prompt, max_tokens, temperature, seed).await
        }
        ToWorker::Bench { molecules, tag, kernels, prefill, decode_tokens } => {
            bench::run(molecules, &tag, kernels, &prefill, decode_tokens).await
        }
    }
}

async fn init(model_url: &str, sha256: &str, tags_url: &str, weights: WeightsChoice, backend: BackendChoice) -> Result<(), String> {
    let t0 = now_ms();
    // The sha256 is computed once, while the file is parsed (`ModelIdentity::gguf_sha256`), and
    // compared here; a cached copy that fails is dropped and downloaded again.
    let mut use_cache = true;
    let (model, from_cache) = loop {
        let (bytes, from_cache) = model_bytes(model_url, use_cache).await?;
        // A download is stored only once it has passed the check: keep a copy for that.
        let copy = (!from_cache).then(|| Uint8Array::from(&bytes[..]));
        status(match weights {
            WeightsChoice::F32 => "Checking the model (sha256) and loading its weights (~100 MB, products in f32)…",
            WeightsChoice::Quantized => "Checking the model (sha256) and loading its quantised weights (~100 MB)…",
        });
        yield_now().await;
        let checked = parse_gguf(bytes).await.map_err(|e| format!("cannot load the model: {e}")).and_then(|f| {
            let got = &f.identity.gguf_sha256;
            if got == sha256 {
                Ok(f)
            } else {
                Err(format!("the model file is not the expected one (sha256 {got}, expected {sha256}); reload to try again"))
            }
        });
        let checked = match checked {
            Ok(file) => {
                setup_backend(&file, backend).await;
                Model::from_gguf(file, weights_of(weights)).map_err(|e| format!("cannot load the model: {e}"))
            }
            Err(e) => Err(e),
        };
        match checked {
            Ok(m) => {
                if let Some(copy) = copy {
                    store_model(model_url, &copy).await;
                }
                break (Rc::new(m), from_cache);
            }
            Err(e) if from_cache => {
                web_sys::console::warn_1(&format!("the cached model failed ({e}); downloading it again").into());
                delete_cached_model(model_url).await;
                use_cache = false;
            }
            Err(e) => return Err(e),
        }
    };
    status("Loading the tags…");
    let (lib, tag_errors) = load_tags(tags_url, &model).await;
    let source = if from_cache { "browser cache" } else { "downloaded" };
    ready(model, lib, tag_errors, weights, t0, from_cache, source.into());
    Ok(())
}

/// Parses and checks a GGUF file, its sha256 computed by the browser (SubtleCrypto: native code;
/// this crate's WebAssembly sha256 took ~3.5 s of the 98 MB model's ~5 s load) or, where the
/// browser has none (a page served over plain HTTP from another host is not a secure context),
/// by the core.
async fn parse_gguf(bytes: Vec<u8>) -> crate::error::Result<GgufFile> {
    let sha256 = browser_sha256(&bytes).await;
    GgufFile::from_bytes_with_sha256(bytes, sha256)
}

async fn browser_sha256(bytes: &[u8]) -> Option<String> {
    let crypto = scope().crypto().ok()?;
    if js_sys::Reflect::get(&crypto, &"subtle".into()).ok()?.is_undefined() {
        return None;
    }
    // `digest` copies the bytes before it returns its promise, so a view of wasm memory is fine.
    let promise = crypto.subtle().digest_with_str_and_u8_array("SHA-256", bytes).ok()?;
    let digest = JsFuture::from(promise).await.ok()?;
    Some(Uint8Array::new(&digest).to_vec().iter().map(|b| format!("{b:02x}")).collect())
}

async fn model_cache() -> Option<Cache> {
    let caches = scope().caches().ok()?;
    JsFuture::from(caches.open(MODEL_CACHE)).await.ok().map(|c| c.unchecked_into())
}

async fn store_model(url: &str, bytes: &Uint8Array) {
    let Some(cache) = model_cache().await else { return };
    status("Storing the model in the browser's cache…");
    if let Ok(resp) = Response::new_with_opt_buffer_source(Some(bytes)) {
        if let Err(e) = JsFuture::from(cache.put_with_str(url, &resp)).await {
            web_sys::console::warn_1(&format!("could not cache the model: {}", js_err(e)).into());
        }
    }
}

async fn delete_cached_model(url: &str) {
    if let Some(cache) = model_cache().await {
        let _ = JsFuture::from(cache.delete_with_str(url)).await;
    }
}

/// The page's f32 choice holds the file's blocks and expands them panel by panel inside each
/// product ([`Weights::Compact`]): the results of f32 weights expanded once, in ~250 MB of wasm
/// memory instead of ~720.
fn weights_of(w: WeightsChoice) -> Weights {
    match w {
        WeightsChoice::F32 => Weights::Compact,
        WeightsChoice::Quantized => Weights::Quantized,
    }
}

fn ready(model: Rc<Model>, lib: TagLibrary, tag_errors: Vec<String>, weights: WeightsChoice, t0: f64, from_cache: bool, source: String) {
    let tags = describe(&model, &lib);
    let info = ModelInfo { name: model.identity.name.clone(), sha256: model.identity.gguf_sha256.clone(), source };
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.model = Some(model);
        s.library = Rc::new(lib);
    });
    send(&FromWorker::Ready {
        weights,
        backend: STATE.with(|s| s.borrow().backend.clone()),
        load_ms: now_ms() - t0,
        from_cache,
        model: info,
        tags,
        tag_errors,
    });
}

/// A user's own GGUF file: checked by the core (architecture, metadata, tensors); if it loads it
/// replaces the model and the tags are checked again against it, else the loaded model stays.
async fn load_local_model(file: &str, bytes: Vec<u8>, weights: WeightsChoice, backend: BackendChoice) {
    let t0 = now_ms();
    status(format!("Checking {file}…"));
    yield_now().await;
    let gguf = match parse_gguf(bytes).await {
        Ok(g) => g,
        Err(e) => {
            send(&FromWorker::ModelError { message: format!("{file}: {e}") });
            return;
        }
    };
    // Free the old weights before building the new ones (two f32 copies may not fit).
    let old_lib = STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.model = None;
        s.library.clone()
    });
    status(format!("Preparing {file}…"));
    yield_now().await;
    setup_backend(&gguf, backend).await;
    let model = match Model::from_gguf(gguf, weights_of(weights)) {
        Ok(m) => Rc::new(m),
        Err(e) => {
            send(&FromWorker::Fatal { message: format!("cannot load {file}: {e}; reload the page to use the default model") });
            return;
        }
    };
    // The tags loaded so far, checked against the new model.
    let mut lib = TagLibrary::new();
    let mut errors = Vec::new();
    for tag in old_lib.iter() {
        let name = format!("{}.safetensors", tag.meta.name);
        if let Err(e) = lib.insert(tag.clone(), &model.identity, &name) {
            errors.push(e.to_string());
        }
    }
    ready(model, lib, errors, weights, t0, false, format!("local file {file}"));
}

/// Puts the model on the GPU when `choice` allows it and the browser offers a WebGPU adapter
/// that can run it; records what runs and why.
async fn setup_backend(file: &GgufFile, choice: BackendChoice) {
    let backend = match choice {
        BackendChoice::Cpu => format!("{CPU_BACKEND} — chosen in the page"),
        _ => match gpu_model(file, choice).await {
            Ok(description) => description,
            Err(why) => format!("{CPU_BACKEND} — {why}"),
        },
    };
    STATE.with(|s| s.borrow_mut().backend = backend);
}

/// Uploads the model to a new WebGPU device: a description of it, or why not.
#[cfg(feature = "gpu")]
async fn gpu_model(file: &GgufFile, choice: BackendChoice) -> Result<String, String> {
    STATE.with(|s| s.borrow_mut().gpu = None);
    status("Looking for a WebGPU adapter…");
    let gpu = Gpu::new().await.map_err(|e| e.to_string())?;
    let name = gpu.describe();
    if gpu.is_software() && choice == BackendChoice::Auto {
        return Err(format!(
            "the browser's only WebGPU adapter is a software one ({name}), slower than this CPU \
             path; choose WebGPU to use it anyway"
        ));
    }
    status(format!("Uploading the weights to the GPU ({name})…"));
    yield_now().await;
    let llama = GpuLlama::new(gpu, file).map_err(|e| format!("WebGPU ({name}) cannot run this model: {e}"))?;
    STATE.with(|s| s.borrow_mut().gpu = Some(llama));
    Ok(format!("WebGPU ({name})"))
}

#[cfg(not(feature = "gpu"))]
async fn gpu_model(_file: &GgufFile, _choice: BackendChoice) -> Result<String, String> {
    Err("this build has no WebGPU backend".into())
}

/// Attempts at downloading the model before giving up (a connection that drops mid-file).
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// The model file's bytes: from Cache Storage when `use_cache` and it is there, else downloaded
/// with progress. The caller checks them (sha256) and stores a download. A download that breaks
/// off (network error, connection closed, fewer bytes than announced) starts again from the
/// beginning, up to [`DOWNLOAD_ATTEMPTS`] times, and the page is told; an HTTP error does not.
async fn model_bytes(url: &str, use_cache: bool) -> Result<(Vec<u8>, bool), String> {
    if use_cache {
        if let Some(cache) = model_cache().await {
            status("Looking for the model in the browser's cache…");
            if let Ok(hit) = JsFuture::from(cache.match_with_str(url)).await {
                if let Ok(resp) = hit.dyn_into::<Response>() {
                    if let Ok(buf) = JsFuture::from(resp.array_buffer().map_err(js_err)?).await {
                        return Ok((Uint8Array::new(&buf).to_vec(), true));
                    }
                }
            }
        }
    }
    let mut attempt = 1;
    loop {
        status("Downloading the model…");
        // After a bad cached copy, or a broken attempt, past the browser's HTTP cache too.
        match download(url, !use_cache || attempt > 1).await {
            Ok(bytes) => return Ok((bytes, false)),
            Err(Download::Fatal(e)) => return Err(e),
            Err(Download::Broken(e)) if attempt < DOWNLOAD_ATTEMPTS => {
                attempt += 1;
                web_sys::console::warn_1(&format!("the model download broke off ({e}); starting again").into());
                status(format!("The download broke off ({e}); starting again (attempt {attempt} of {DOWNLOAD_ATTEMPTS})…"));
                sleep_ms(1000 * attempt as i32).await;
            }
            Err(Download::Broken(e)) => {
                return Err(format!("the model download failed {DOWNLOAD_ATTEMPTS} times (last: {e}); reload to try again"))
            }
        }
    }
}

/// Why a download ended without the file.
enum Download {
    /// The server said no (HTTP status): trying again will not help.
    Fatal(String),
    /// The transfer broke off: worth starting again.
    Broken(String),
}

async fn download(url: &str, reload: bool) -> Result<Vec<u8>, Download> {
    let init = web_sys::RequestInit::new();
    if reload {
        init.set_cache(web_sys::RequestCache::Reload);
    }
    let resp: Response = JsFuture::from(scope().fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| Download::Broken(format!("cannot download the model from {url}: {}", js_err(e))))?
        .unchecked_into();
    if !resp.ok() {
        return Err(Download::Fatal(format!(
            "cannot download the model from {url}: HTTP {} {}",
            resp.status(),
            resp.status_text()
        )));
    }
    let total: u64 = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut bytes = Vec::with_capacity(total as usize);
    let body = resp.body().ok_or_else(|| Download::Broken("the model download has no body".into()))?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut last = 0.0;
    send(&FromWorker::Download { loaded: 0, total });
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| Download::Broken(format!("the connection dropped after {} bytes: {}", bytes.len(), js_err(e))))?;
        let done = js_sys::Reflect::get(&chunk, &"done".into()).map(|v| v.is_truthy()).unwrap_or(true);
        if done {
            break;
        }
        let value: Uint8Array = js_sys::Reflect::get(&chunk, &"value".into())
            .map_err(|e| Download::Broken(js_err(e)))?
            .unchecked_into();
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        if now_ms() - last > 100.0 {
            last = now_ms();
            send(&FromWorker::Download { loaded: bytes.len() as u64, total });
        }
    }
    if total > 0 && (bytes.len() as u64) < total {
        return Err(Download::Broken(format!("the connection closed after {} of {total} bytes", bytes.len())));
    }
    send(&FromWorker::Download { loaded: bytes.len() as u64, total: total.max(bytes.len() as u64) });
    Ok(bytes)
}

async fn sleep_ms(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(p).await;
}

/// Fetches `tags_url` (a JSON list of file names, relative to it) and every tag file in it.
async fn load_tags(tags_url: &str, model: &Model) -> (TagLibrary, Vec<String>) {
    let mut lib = TagLibrary::new();
    let mut errors = Vec::new();
    let names: Vec<String> = match fetch_bytes(tags_url).await {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(n) => n,
            Err(e) => {
                errors.push(format!("{tags_url}: not a JSON list of tag files: {e}"));
                vec![]
            }
        },
        Err(e) => {
            errors.push(format!("no tag list: {e}"));
            vec![]
        }
    };
    let base = tags_url.rsplit_once('/').map(|(b, _)| format!("{b}/")).unwrap_or_default();
    for name in names {
        match fetch_bytes(&format!("{base}{name}")).await {
            Ok(bytes) => {
                if let Err(e) = lib.add_bytes(&bytes, &name, &model.identity) {
                    errors.push(e.to_string());
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (lib, errors)
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let resp: Response = match JsFuture::from(scope().fetch_with_str(url)).await {
        Ok(r) => r.unchecked_into(),
        // Offline and not answered by the service worker: the copy it cached, if any.
        Err(e) => match cached(url).await {
            Some(r) => r,
            None => return Err(format!("cannot fetch {url}: {}", js_err(e))),
        },
    };
    if !resp.ok() {
        return Err(format!("cannot fetch {url}: HTTP {}", resp.status()));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(js_err)?).await.map_err(js_err)?;
    Ok(Uint8Array::new(&buf).to_vec())
}

/// `url` from the service worker's shell cache.
async fn cached(url: &str) -> Option<Response> {
    let caches = scope().caches().ok()?;
    let cache: Cache = JsFuture::from(caches.open(SHELL_CACHE)).await.ok()?.unchecked_into();
    JsFuture::from(cache.match_with_str(url)).await.ok()?.dyn_into::<Response>().ok()
}

/// What the page shows about each tag; function tags get their input slots (or the reason they
/// cannot predict).
fn describe(model: &Model, lib: &TagLibrary) -> Vec<TagInfo> {
    lib.iter()
        .map(|tag| {
            let mut info = TagInfo::basic(tag);
            if info.function {
                match Predictor::new(model, lib, &info.name) {
                    Ok(p) => {
                        info.slots = p
                            .slots()
                            .iter()
                            .map(|s| SlotInfo { domain: s.domain.clone(), protein: s.kind == InputType::Protein })
                            .collect()
                    }
                    Err(e) => info.problem = Some(e.to_string()),
                }
            }
            info
        })
        .collect()
}

async fn predict(id: u32, tag: &str, items: Vec<Vec<String>>) {
    let t0 = now_ms();
    let (model, lib) = STATE.with(|s| {
        let s = s.borrow();
        s.cancelled.set(None);
        (s.model.clone(), s.library.clone())
    });
    let total = items.len();
    let Some(model) = model else {
        let values = vec![Outcome::Error("the model is not loaded yet".into()); total];
        send(&FromWorker::Results { id, values, ms: 0.0, cancelled: false });
        return;
    };
    let predictor = match Predictor::new(&model, &lib, tag) {
        Ok(p) => p,
        Err(e) => {
            let values = vec![Outcome::Error(e.to_string()); total];
            send(&FromWorker::Results { id, values, ms: 0.0, cancelled: false });
            return;
        }
    };
    // Invalid inputs are done at once: their error is known before any forward pass.
    let mut values: Vec<Option<Outcome>> = vec![None; total];
    let mut invalid = Vec::new();
    let mut valid = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match predictor.prompt(item) {
            Ok(_) => valid.push(i),
            Err(e) => invalid.push((i, Outcome::Error(e))),
        }
    }
    let mut done = invalid.len();
    for (i, v) in &invalid {
        values[*i] = Some(v.clone());
    }
    send(&FromWorker::Progress { id, done, total });
    if !invalid.is_empty() {
        send(&FromWorker::Partial { id, values: invalid });
    }
    let mut cancelled = false;
    // Small sub-batches with a yield between them, so that a Cancel gets through quickly.
    for part in valid.chunks(SUB_BATCH.min(predictor.batch_size.max(1))) {
        yield_now().await;
        if STATE.with(|s| s.borrow().cancelled.get()) == Some(id) {
            cancelled = true;
            break;
        }
        let batch: Vec<Vec<String>> = part.iter().map(|&i| items[i].clone()).collect();
        let before = done;
        let results = match predict_on_gpu(&predictor, &batch).await {
            Some(results) => results,
            None => predictor.predict_with_progress(&batch, |d, _| {
                send(&FromWorker::Progress { id, done: before + d, total });
                true
            }),
        };
        let computed: Vec<(usize, Outcome)> = part
            .iter()
            .zip(results)
            .map(|(&i, r)| {
                let v = match r {
                    Ok(v) => Outcome::Value(v),
                    Err(e) => Outcome::Error(e),
                };
                values[i] = Some(v.clone());
                (i, v)
            })
            .collect();
        done += part.len();
        send(&FromWorker::Progress { id, done, total });
        send(&FromWorker::Partial { id, values: computed });
    }
    let values = values
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Outcome::Error("cancelled before it was computed".into())))
        .collect();
    send(&FromWorker::Results { id, values, ms: now_ms() - t0, cancelled });
}

/// `batch` on the GPU when the model is there: `None` when it is not, or when the GPU fails —
/// then the GPU is given up for the CPU (the page is told why) and the caller runs the batch on
/// the CPU, so no input is lost.
#[cfg(feature = "gpu")]
async fn predict_on_gpu(predictor: &Predictor<'_>, batch: &[Vec<String>]) -> Option<Vec<Result<f64, String>>> {
    let mut gpu = STATE.with(|s| s.borrow_mut().gpu.take())?;
    let result = predictor.predict_gpu(&mut gpu, batch).await;
    if STATE.with(|s| s.borrow().lose_gpu.replace(false)) {
        gpu.gpu().lose_device();
    }
    match result {
        Ok(values) => {
            STATE.with(|s| s.borrow_mut().gpu = Some(gpu));
            Some(values)
        }
        Err(e) => {
            give_up_gpu(&e);
            None
        }
    }
}

/// After a GPU failure during a run: the CPU backend from now on, and the page told why (the GPU
/// itself was already taken out of the state by the run that failed).
#[cfg(feature = "gpu")]
fn give_up_gpu(e: &crate::error::Error) {
    let backend = format!("{CPU_BACKEND} — WebGPU failed during a run ({e}); the CPU took over");
    web_sys::console::warn_1(&backend.clone().into());
    STATE.with(|s| s.borrow_mut().backend = backend.clone());
    send(&FromWorker::Backend { backend });
}

#[cfg(not(feature = "gpu"))]
async fn predict_on_gpu(_predictor: &Predictor<'_>, _batch: &[Vec<String>]) -> Option<Vec<Result<f64, String>>> {
    None
}

/// The `k` vocabulary tokens nearest (cosine similarity) to each vector of `name`: the token
/// embedding table is read in slices (dequantised rows, no full copy), dot products against the
/// tag's vectors, divided by both norms. `centred`: both sides without their component along the
/// vocabulary's mean embedding — tags start on that direction (the paper's initialisation: the
/// mean, rescaled) and token embeddings share it too, so plain cosines mostly show it.
fn inspect(name: &str, k: usize, centred: bool) {
    let t0 = now_ms();
    let (model, lib) = STATE.with(|s| {
        let s = s.borrow();
        (s.model.clone(), s.library.clone())
    });
    let result = match (model, lib.get(name)) {
        (Some(model), Ok(tag)) => nearest_tokens(&model, &tag.vectors, k.clamp(1, 50), centred).map_err(|e| e.to_string()),
        (None, _) => Err("the model is not loaded yet".to_string()),
        (_, Err(e)) => Err(e.to_string()),
    };
    let (vectors, error) = match result {
        Ok(v) => (v, None),
        Err(e) => (vec![], Some(e)),
    };
    send(&FromWorker::Nearest { tag: name.to_string(), centred, vectors, ms: now_ms() - t0, error });
}

/// Rows of the token embedding table, `SLICE` at a time: `f(first id, [n, d] f32)`.
fn for_each_slice(model: &Model, mut f: impl FnMut(usize, Tensor) -> crate::error::Result<()>) -> crate::error::Result<()> {
    const SLICE: usize = 4096;
    let vocab = model.llama.config.vocab;
    let mut start = 0;
    while start < vocab {
        let end = (start + SLICE).min(vocab);
        let ids: Vec<u32> = (start as u32..end as u32).collect();
        f(start, model.llama.embed_tokens(&ids)?.to_dtype(DType::F32)?)?;
        start = end;
    }
    Ok(())
}

fn nearest_tokens(model: &Model, vectors: &Tensor, k: usize, centred: bool) -> crate::error::Result<Vec<Vec<(String, f32)>>> {
    let mean = if centred {
        let mut sum = Tensor::zeros(model.llama.config.hidden, DType::F32, vectors.device())?;
        for_each_slice(model, |_, e| {
            sum = sum.add(&e.sum(0)?)?;
            Ok(())
        })?;
        let unit = (&sum / sum.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?.max(1e-12) as f64)?;
        Some(unit.unsqueeze(0)?) // [1, d]
    } else {
        None
    };
    // Rows minus their component along the mean direction.
    let centre = |t: Tensor| -> crate::error::Result<Tensor> {
        Ok(match &mean {
            Some(m) => (&t - t.matmul(&m.t()?)?.broadcast_mul(m)?)?,
            None => t,
        })
    };
    let v = centre(vectors.to_dtype(DType::F32)?)?;
    let p = v.dim(0)?;
    let v_norm: Vec<f32> = v.sqr()?.sum(1)?.sqrt()?.to_vec1()?;
    // Per vector, the best k so far: (cosine, token id), kept sorted descending.
    let mut best: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(k + 1); p];
    for_each_slice(model, |start, e| {
        let e = centre(e)?; // [n, d]
        let e_norm: Vec<f32> = e.sqr()?.sum(1)?.sqrt()?.to_vec1()?;
        let dots: Vec<Vec<f32>> = v.matmul(&e.t()?)?.to_vec2()?; // [p, n]
        for (i, row) in dots.iter().enumerate() {
            for (j, &dot) in row.iter().enumerate() {
                let cos = dot / (v_norm[i] * e_norm[j]).max(1e-12);
                let list = &mut best[i];
                if list.len() < k || cos > list[list.len() - 1].0 {
                    let at = list.partition_point(|x| x.0 >= cos);
                    list.insert(at, (cos, (start + j) as u32));
                    list.truncate(k);
                }
            }
        }
        Ok(())
    })?;
    Ok(best
        .into_iter()
        .map(|list| list.into_iter().map(|(c, id)| (model.tokenizer.token_text(id), c)).collect())
        .collect())
}

async fn generate(id: u32, prompt: &str, max_tokens: usize, temperature: f64, seed: u64) {
    let t0 = now_ms();
    let (model, lib) = STATE.with(|s| {
        let s = s.borrow();
        (s.model.clone(), s.library.clone())
    });
    let Some(model) = model else {
        send(&FromWorker::Generated { id, tokens: 0, ms: 0.0, error: Some("the model is not loaded yet".into()), on_gpu: false });
        return;
    };
    let sampling = Sampling { temperature, top_p: 0.95, seed };
    let mut on_text = |piece: &str| {
        send(&FromWorker::Piece { id, text: piece.to_string() });
        true
    };
    let mut on_gpu = false;
    let result = match lib.splice(prompt, &model.tokenizer) {
        Ok(segments) => match generate_on_gpu(&model, &segments, max_tokens, sampling, &mut on_text).await {
            Some(result) => {
                on_gpu = true;
                result
            }
            None => model.generate(&segments, max_tokens, sampling, on_text),
        },
        Err(e) => Err(e),
    };
    let (tokens, error) = match result {
        Ok(t) => (t.len(), None),
        Err(e) => (0, Some(e.to_string())),
    };
    send(&FromWorker::Generated { id, tokens, ms: now_ms() - t0, error, on_gpu });
}

/// Generation on the GPU when the model is there and free: `None` when it is not (the caller
/// generates on the CPU). A GPU failure before any text gives the GPU up for the CPU, as
/// [`predict_on_gpu`] does, and returns `None`; after some text it is the run's error (the text
/// shown cannot be taken back).
#[cfg(feature = "gpu")]
async fn generate_on_gpu(
    model: &Model,
    segments: &[crate::model::Segment],
    max_tokens: usize,
    sampling: Sampling,
    on_text: &mut impl FnMut(&str) -> bool,
) -> Option<crate::error::Result<Vec<u32>>> {
    let mut gpu = STATE.with(|s| s.borrow_mut().gpu.take())?;
    let mut pieces = 0;
    let result = gpu
        .generate(model, segments, max_tokens, sampling, |piece| {
            pieces += 1;
            on_text(piece)
        })
        .await;
    match result {
        Ok(tokens) => {
            STATE.with(|s| s.borrow_mut().gpu = Some(gpu));
            Some(Ok(tokens))
        }
        Err(e) => {
            give_up_gpu(&e);
            (pieces > 0).then_some(Err(e))
        }
    }
}

#[cfg(not(feature = "gpu"))]
async fn generate_on_gpu(
    _model: &Model,
    _segments: &[crate::model::Segment],
    _max_tokens: usize,
    _sampling: Sampling,
    _on_text: &mut impl FnMut(&str) -> bool,
) -> Option<crate::error::Result<Vec<u32>>> {
    None
}

/// Yields to the worker's event loop (so messages such as Cancel get delivered).
async fn yield_now() {
    sleep_ms(0).await
}
