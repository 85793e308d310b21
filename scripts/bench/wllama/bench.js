// The wllama side of scripts/bench-browser.sh: @wllama/wllama (llama.cpp compiled to WebAssembly,
// npm) on the same GGUF file, from the same local server, measuring what the page's `?bench` view
// measures (src/app/ui/bench.rs) the way scripts/bench/llamacpp_bench.py measures llama.cpp:
//
// - load, cold: wllama's model cache cleared, then `new Wllama` + `loadModelFromUrl` (download,
//   store in its cache, load); warm: that instance exited, a new one loads from its cache.
// - prefill N: the text of the token ids the page ran (its JSON's `prompt_texts`; wllama 3 takes
//   text only, and `prompt_tokens_match` checks that its tokenizer makes N tokens of it), one
//   completion with the prompt cache off and one sampled token; median of 3 after a warm-up.
// - decode: the same 16-token prompt with 1 and with N+1 greedy tokens (EOS ignored): the
//   difference is N decoding steps (the last sampled token is never decoded); median of 3 each.
// - molecules: the QED prompt without tags (wllama cannot splice tag vectors), the shared prefix
//   evaluated once; each molecule is one completion (one sampled token) with the prompt cache on,
//   so llama.cpp's server keeps the longest common token prefix with the previous prompt: the
//   prefix, and sometimes the first tokens of a SMILES too (counted: `mean_cached_tokens`).
//
// Times are wall-clock around each call from this page (`performance.now()`), so they include the
// message to wllama's worker and back; llama.cpp's own timings (`timings` of each response) are
// kept beside them as `engine_*`.
import { Wllama, LoggerWithoutDebug } from './esm/index.js';

const out = document.querySelector('[data-testid="bench-json"]');
const statusEl = document.querySelector('[data-testid="bench-status"]');
const say = (text) => { statusEl.textContent = text; };
const now = () => performance.now();
// The same median as src/bench.rs (`times[len / 2]` of the sorted times).
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function complete(w, prompt, maxTokens, cachePrompt) {
  const t = now();
  const r = await w.createCompletion({
    prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, cache_prompt: cachePrompt, stream: false,
  });
  const ms = now() - t;
  return { ms, timings: r.timings || {}, usage: r.usage || {}, text: r.choices && r.choices[0] ? r.choices[0].text : '' };
}

async function prefill(w, text, n) {
  const runs = [];
  for (let i = 0; i < 4; i++) runs.push(await complete(w, text, 1, false));
  const timed = runs.slice(1);
  const ms = median(timed.map((r) => r.ms));
  const engineMs = median(timed.map((r) => r.timings.prompt_ms));
  return {
    tokens: n, ms, tokens_per_s: (n * 1000) / ms,
    engine_ms: engineMs, engine_tokens_per_s: (n * 1000) / engineMs,
    prompt_tokens_match: timed[0].usage.prompt_tokens === n,
    engine_prompt_tokens: timed[0].usage.prompt_tokens, engine_prompt_n: timed[0].timings.prompt_n,
    engine_cache_n: timed[0].timings.cache_n,
  };
}

async function decode(w, text, promptTokens, n) {
  const one = [];
  const many = [];
  for (let i = 0; i < 4; i++) {
    one.push(await complete(w, text, 1, false));
    many.push(await complete(w, text, n + 1, false));
  }
  const ms = median(many.slice(1).map((r) => r.ms)) - median(one.slice(1).map((r) => r.ms));
  const last = many[many.length - 1].timings;
  return {
    tokens: n, ms, tokens_per_s: (n * 1000) / ms,
    engine_predicted_n: last.predicted_n, engine_predicted_ms: last.predicted_ms,
    engine_tokens_per_s: last.predicted_per_second,
    prompt_tokens_match: many[many.length - 1].usage.prompt_tokens === promptTokens,
    text: many[many.length - 1].text,
  };
}

async function molecules(w, cfg) {
  await complete(w, cfg.head, 1, true); // the shared prefix, once
  const cached = [];
  const processed = [];
  let engineMs = 0;
  const t = now();
  for (const s of cfg.smiles) {
    const r = await complete(w, `${cfg.head} ${s}${cfg.tail}`, 1, true);
    cached.push(r.timings.cache_n);
    processed.push(r.timings.prompt_n);
    engineMs += r.timings.prompt_ms;
  }
  const ms = now() - t;
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    molecules: cfg.smiles.length, ms, molecules_per_s: (cfg.smiles.length * 1000) / ms,
    engine_molecules_per_s: (cfg.smiles.length * 1000) / engineMs,
    mean_cached_tokens: mean(cached), mean_processed_tokens: mean(processed),
  };
}

async function pageMemory() {
  if (!self.crossOriginIsolated || !performance.measureUserAgentSpecificMemory) {
    return { available: false, why: 'measureUserAgentSpecificMemory needs a cross-origin isolated page (COOP + COEP headers)' };
  }
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 60000));
  const r = await Promise.race([performance.measureUserAgentSpecificMemory(), timeout]);
  if (!r) return { available: false, why: 'no answer within 60 s' };
  // What it attributed where (entries of at least 1 MB), as the page's ?bench view records it.
  const breakdown = r.breakdown.filter((b) => b.bytes >= 1e6)
    .map((b) => ({ mb: b.bytes / 1e6, attribution: b.attribution, types: b.types }));
  return { available: true, mb: r.bytes / 1e6, breakdown };
}

async function run(cfg) {
  const paths = { default: new URL('./esm/wasm/wllama.wasm', import.meta.url).href };
  const config = { suppressNativeLog: true, logger: LoggerWithoutDebug };
  const modelUrl = new URL(cfg.modelUrl, location.href).href;
  // Single slot (so the prompt cache is the previous prompt), no GPU, no warm-up run at load.
  const params = { n_threads: cfg.threads, n_ctx: 2048, n_batch: 512, n_parallel: 1, n_gpu_layers: 0, warmup: false };
  const result = {
    engine: `@wllama/wllama ${cfg.version}`, libllama: Wllama.getLibllamaVersion ? Wllama.getLibllamaVersion() : null,
    threads_requested: cfg.threads, cross_origin_isolated: self.crossOriginIsolated,
    user_agent: navigator.userAgent, hardware_concurrency: navigator.hardwareConcurrency,
  };

  say('Cold load: clearing wllama\'s model cache, downloading…');
  await new Wllama(paths, config).modelManager.clear();
  let t = now();
  let w = new Wllama(paths, config);
  await w.loadModelFromUrl(modelUrl, params);
  result.load_cold = { ms: now() - t };
  await w.exit();

  say('Warm load: a new instance, the model from wllama\'s cache…');
  t = now();
  w = new Wllama(paths, config);
  await w.loadModelFromUrl(modelUrl, params);
  result.load_warm = { ms: now() - t };
  result.cached_models = (await w.modelManager.getModels()).length;
  result.multithread = w.isMultithread();
  result.threads = w.getNumThreads();

  const prefillFigures = [];
  for (const { text, tokens } of cfg.prefill) {
    say(`Prefill ${tokens} tokens…`);
    prefillFigures.push(await prefill(w, text, tokens));
  }
  result.prefill = prefillFigures;
  say(`Decoding ${cfg.decodeTokens} tokens…`);
  const d = await decode(w, cfg.decodePrompt, cfg.decodePromptTokens, cfg.decodeTokens);
  result.decode_tokens = cfg.decodeTokens;
  result.decode_tokens_per_s = d.tokens_per_s;
  result.decode = d;
  say(`QED prompt without tags over ${cfg.smiles.length} molecules…`);
  const m = await molecules(w, cfg);
  result.molecules = m.molecules;
  result.molecules_per_s = m.molecules_per_s;
  result.molecules_detail = m;
  say('Measuring the page\'s memory…');
  result.page_memory = await pageMemory();
  await w.exit();
  return result;
}

window.startBench = async (cfg) => {
  out.dataset.state = 'running';
  try {
    out.textContent = JSON.stringify(await run(cfg));
    out.dataset.state = 'done';
    say('Done');
  } catch (e) {
    out.textContent = JSON.stringify({ error: String((e && e.stack) || e) });
    out.dataset.state = 'error';
    say(`Failed: ${e}`);
  }
};
say('Ready: waiting for the driver to call startBench(config)');
