//! The web page: a Leptos (csr) front end ([`ui`]) and the Web Worker that holds the model and
//! runs every prediction ([`worker`]), talking through the messages in [`protocol`].
//!
//! Build with Trunk from `web/index.html` (`scripts/serve.sh`); the `web` feature turns it on.
//!
//! ```text
//!  page (tagllm-web)                         worker (tagllm-worker)
//!  ───────────────────                       ──────────────────────
//!  Init{model_url, tags_url, weights} ───▶   Cache Storage hit? else fetch (progress), sha256 check,
//!                                            store; Model::from_bytes; tags from tags/index.json
//!                 ◀─── Download / Status / Ready{tags, weights, backend} / Fatal
//!  AddTag{file} + bytes               ───▶   TagLibrary::add_bytes
//!                 ◀─── Tags{tags, errors}
//!  Predict{id, tag, items}            ───▶   chunks of `batch` items, yielding between chunks
//!  Cancel{id}                         ───▶   (so a cancel is seen before the next chunk)
//!                 ◀─── Progress{done, total} / Results{values}
//! ```

pub mod protocol;
#[cfg(target_arch = "wasm32")]
pub mod ui;
#[cfg(target_arch = "wasm32")]
pub mod worker;
