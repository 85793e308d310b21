//! Offline use: registers the service worker (`web/sw.js`, which caches the app shell and the
//! tags and serves the model from the worker's cache), tells whether the server answers, and
//! whether everything needed offline is in Cache Storage.

use js_sys::Reflect;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Cache, Request, RequestCache, RequestInit, Response};

use super::super::worker::{MODEL_CACHE, SHELL_CACHE};
use super::{MODEL_URL, TAGS_URL};

/// What must be cached for the page to start with the server gone (besides the model).
pub const SHELL: &[&str] = &[
    "./",
    "style.css",
    "tagllm-web.js",
    "tagllm-web_bg.wasm",
    "tagllm-worker_loader.js",
    "tagllm-worker.js",
    "tagllm-worker_bg.wasm",
    TAGS_URL,
];

#[derive(Clone, Copy)]
pub struct Offline {
    /// The server answered the last check (None: not checked yet).
    pub online: RwSignal<Option<bool>>,
    /// The shell, the tag list and the model are all in Cache Storage.
    pub ready: RwSignal<bool>,
    /// The service worker: "registering", "active", or why it is not available.
    pub worker: RwSignal<String>,
}

impl Offline {
    pub fn new() -> Self {
        Self { online: RwSignal::new(None), ready: RwSignal::new(false), worker: RwSignal::new("registering".into()) }
    }

    /// Registers the service worker and starts watching the connection.
    pub fn start(self) {
        let nav = window().navigator();
        if Reflect::has(&nav, &"serviceWorker".into()).unwrap_or(false) {
            let sw = nav.service_worker();
            spawn_local(async move {
                match JsFuture::from(sw.register("./sw.js")).await {
                    Ok(_) => {
                        let _ = JsFuture::from(sw.ready().unwrap_or_else(|_| js_sys::Promise::resolve(&JsValue::NULL))).await;
                        self.worker.set("active".into());
                        self.check_cached();
                    }
                    Err(e) => self.worker.set(format!("no service worker ({e:?})")),
                }
            });
        } else {
            self.worker.set("no service worker in this browser".into());
        }
        self.ping();
        for ev in ["online", "offline"] {
            let cb = Closure::<dyn FnMut()>::new(move || self.ping());
            let _ = window().add_event_listener_with_callback(ev, cb.as_ref().unchecked_ref());
            cb.forget();
        }
        // Re-check now and then: the server may stop or come back.
        set_interval(move || self.ping(), std::time::Duration::from_secs(10));
        // Caching finishes in the background (the service worker's install, the model download).
        set_interval(
            move || {
                if !self.ready.get_untracked() {
                    self.check_cached();
                }
            },
            std::time::Duration::from_secs(2),
        );
    }

    /// Asks the server for the page (bypassing every cache; the service worker lets `tagllm-ping`
    /// requests through to the network).
    pub fn ping(self) {
        if !window().navigator().on_line() {
            self.online.set(Some(false));
            return;
        }
        spawn_local(async move {
            let init = RequestInit::new();
            init.set_cache(RequestCache::NoStore);
            let url = format!("./?tagllm-ping={}", js_sys::Date::now() as u64);
            // Any answer (whatever its status) means the server is there; only a failed fetch
            // means offline.
            let ok = match Request::new_with_str_and_init(&url, &init) {
                Ok(req) => JsFuture::from(window().fetch_with_request(&req)).await.is_ok(),
                Err(_) => false,
            };
            self.online.set(Some(ok));
        });
    }

    pub fn check_cached(self) {
        spawn_local(async move {
            let ready = all_cached().await.unwrap_or(false);
            self.ready.set(ready);
        });
    }

    /// The status line's words.
    pub fn describe(self) -> String {
        let sw = self.worker.get();
        let cached = self.ready.get();
        match (self.online.get(), cached) {
            (Some(false), true) => "Offline — running from the browser cache".into(),
            (Some(false), false) => "Offline — not everything is cached; some parts may be missing".into(),
            (_, true) => "Online · available offline".into(),
            (_, false) if sw == "active" || sw == "registering" => "Online · saving for offline use…".into(),
            (_, false) => format!("Online · offline use unavailable: {sw}"),
        }
    }
}

async fn open(name: &str) -> Option<Cache> {
    let caches = window().caches().ok()?;
    JsFuture::from(caches.open(name)).await.ok().map(|c| c.unchecked_into())
}

async fn has(cache: &Cache, url: &str) -> bool {
    matches!(JsFuture::from(cache.match_with_str(url)).await, Ok(v) if v.is_instance_of::<Response>())
}

async fn all_cached() -> Option<bool> {
    let shell = open(SHELL_CACHE).await?;
    for url in SHELL {
        if !has(&shell, url).await {
            return Some(false);
        }
    }
    let model = open(MODEL_CACHE).await?;
    Some(has(&model, MODEL_URL).await)
}
