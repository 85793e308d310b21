//! The kernel parity cases of `tests/gpu_kernels/` in a browser: WebGPU in headless Chromium
//! (SwiftShader, offered with `--enable-unsafe-webgpu`: `webdriver.json`), each kernel against the
//! CPU path compiled to WebAssembly, with the native tests' bounds.
//!
//! ```sh
//! CHROMEDRIVER=/usr/bin/chromedriver cargo test --target wasm32-unknown-unknown \
//!     --no-default-features --features gpu --test gpu_web
//! ```
//! (`scripts/test.sh` runs it; the runner is `wasm-bindgen-test-runner`, set in
//! `.cargo/config.toml`.)
#![cfg(all(target_arch = "wasm32", feature = "gpu"))]

mod gpu_kernels;

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn every_kernel_matches_the_cpu_in_the_browser() {
    let gpu = tagllm::gpu::Gpu::new()
        .await
        .expect("no WebGPU adapter: headless Chromium offers SwiftShader with --enable-unsafe-webgpu (webdriver.json)");
    gpu_kernels::say(&format!("WebGPU adapter: {}", gpu.describe()));
    gpu_kernels::all(&gpu).await;
}
