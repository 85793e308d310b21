//! The page's inference worker (see `tagllm::app::worker`); Trunk builds it with a loader shim.
fn main() {
    #[cfg(target_arch = "wasm32")]
    tagllm::app::worker::start();
}
