// tagllm's service worker: after one visit the page works with the server gone.
//
// - The app shell (page, scripts, both wasm files, the worker loader, css) and the tag library
//   (tags/index.json, every tag file, tags/cards.json, every card) are precached on install into
//   SHELL_CACHE, and refreshed network-first on every later fetch: online you always get the
//   files the server has now, offline (or when the server takes longer than NETWORK_TIMEOUT_MS
//   and a copy exists) the cached copy.
// - The model (*.gguf, ~140 MB) is served from MODEL_CACHE, the bucket the inference worker
//   itself fills after checking the file's sha256 (src/app/worker.rs). It is never stored twice.
// - `?tagllm-ping` requests go to the network only: the page uses them to tell online from offline.
//
// Bump VERSION to drop the old shell cache (activate deletes every tagllm-shell-* but the current).
const VERSION = "v1";
const SHELL_CACHE = `tagllm-shell-${VERSION}`; // = SHELL_CACHE in src/app/worker.rs
const MODEL_CACHE = "tagllm-model-v1"; // = MODEL_CACHE in src/app/worker.rs
const NETWORK_TIMEOUT_MS = 4000;
const SHELL = [
  "./",
  "style.css",
  "tagllm-web.js",
  "tagllm-web_bg.wasm",
  "tagllm-worker_loader.js",
  "tagllm-worker.js",
  "tagllm-worker_bg.wasm",
  "tags/index.json",
  "tags/cards.json",
];

async function precache() {
  const cache = await caches.open(SHELL_CACHE);
  const put = async (url) => {
    const resp = await fetch(url, { cache: "no-cache" });
    if (resp.ok) await cache.put(url, resp);
  };
  await Promise.all(SHELL.map(put));
  // The files the two lists name (relative to tags/).
  for (const list of ["tags/index.json", "tags/cards.json"]) {
    try {
      const resp = await cache.match(list);
      const names = resp ? await resp.json() : [];
      await Promise.all(names.map((n) => put(`tags/${n}`).catch(() => {})));
    } catch (e) {
      // A missing or malformed list: the page reports it; nothing more to cache.
    }
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("tagllm-shell-") && name !== SHELL_CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

// Navigations (any query string) are the page itself: one cache entry, "./".
function cacheKey(request) {
  if (request.mode === "navigate") return new URL("./", self.registration.scope).href;
  return request.url;
}

async function networkFirst(request) {
  const cache = await caches.open(SHELL_CACHE);
  const key = cacheKey(request);
  const network = fetch(request).then((resp) => {
    if (resp.status === 200 && resp.type === "basic") cache.put(key, resp.clone()).catch(() => {});
    return resp;
  });
  network.catch(() => {}); // answered from the cache below; the failure itself is expected
  const cached = () => cache.match(key, { ignoreSearch: request.mode === "navigate" });
  // A hanging server should not hold the page when a copy exists.
  const timeout = new Promise((resolve) => setTimeout(resolve, NETWORK_TIMEOUT_MS));
  try {
    const first = await Promise.race([network, timeout.then(() => null)]);
    if (first) return first;
    const hit = await cached();
    return hit || (await network);
  } catch (err) {
    const hit = await cached();
    if (hit) return hit;
    throw err;
  }
}

async function model(request) {
  const cache = await caches.open(MODEL_CACHE);
  const hit = await cache.match(request.url);
  return hit || fetch(request);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.searchParams.has("tagllm-ping")) return;
  if (url.pathname.endsWith(".gguf")) {
    event.respondWith(model(request));
    return;
  }
  event.respondWith(networkFirst(request));
});
