//! The tagllm web page (see `tagllm::app::ui`); Trunk builds it from `web/index.html`.
fn main() {
    #[cfg(target_arch = "wasm32")]
    tagllm::app::ui::mount();
}
