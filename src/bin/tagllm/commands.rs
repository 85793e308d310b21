//! The subcommands. Each loads what it needs, does its work, and reports per-input problems
//! without stopping.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::json;

use tagllm::input::{parse_csv, read_records, InputKind, Record};
use tagllm::metrics;
use tagllm::model::{Model, Sampling};
use tagllm::predict::Predictor;
use tagllm::tags::{InputType, OutputKind, TagLibrary};

use crate::output::{csv_field, number, progress};
use crate::{Cli, Command, Format, InputArg, OutputArg, TagsAction, TrainFlags, TrainStage, WeightsArg};

pub fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Generate { prompt, max_tokens, temperature, top_p, seed } => {
            let model = Model::load_with(&cli.model, cli.weights.for_generation())?;
            let library = load_library(&cli.tags, &model, false)?;
            let segments = library.splice(prompt, &model.tokenizer)?;
            let sampling = Sampling { temperature: *temperature, top_p: *top_p, seed: *seed };
            let mut out = std::io::stdout().lock();
            model.generate(&segments, *max_tokens, sampling, |piece| {
                let _ = out.write_all(piece.as_bytes());
                out.flush().is_ok()
            })?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict { tag, input, column, protein, protein_file, format, batch } => {
            let model = Model::load_with(&cli.model, cli.weights.for_predictions())?;
            let library = load_library(&cli.tags, &model, true)?;
            let mut predictor = Predictor::new(&model, &library, tag)?;
            predictor.batch_size = *batch;
            let protein = match (protein, protein_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(f)) => Some(
                    std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
                ),
                (None, None) => None,
            };
            let (records, varying, fixed) = plan_inputs(&predictor, input, column.as_deref(), protein)?;
            let items: Vec<Vec<String>> =
                records.iter().map(|r| assemble(&predictor, varying, &fixed, &r.text)).collect();
            let bar = progress(items.len(), "predict");
            let results = predictor.predict_with_progress(&items, |done, _| {
                bar.set_position(done as u64);
                true
            });
            bar.finish_and_clear();
            write_predictions(&records, &results, *format, &predictor)?;
            let failed = results.iter().filter(|r| r.is_err()).count();
            eprintln!("predicted {} of {} inputs{}", results.len() - failed, results.len(),
                if failed > 0 { format!("; {failed} could not be predicted (see the error column)") } else { String::new() });
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval { tag, data, input_col, target_col, protein_col, limit, batch, predictions } => {
            let model = Model::load_with(&cli.model, cli.weights.for_predictions())?;
            let library = load_library(&cli.tags, &model, true)?;
            let mut predictor = Predictor::new(&model, &library, tag)?;
            predictor.batch_size = *batch;
            let report = evaluate(&predictor, data, input_col, target_col, protein_col.as_deref(), *limit, predictions.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Train { stage } => {
            train(&cli, stage)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { tag, backend, json: as_json } => {
            bench(&cli, tag, backend, *as_json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tags { action } => {
            let model = Model::load(&cli.model)?;
            let (library, errors) = TagLibrary::load_dir(&cli.tags, &model.identity)?;
            match action {
                TagsAction::List => {
                    println!("{:<18} {:<9} {:>3}  {:<22} DESCRIPTION", "NAME", "KIND", "P", "PREDICTS");
                    for t in library.iter() {
                        let m = &t.meta;
                        let predicts = match (&m.output, &m.target, &m.input) {
                            (Some(OutputKind::BinaryClassification), _, _) => "probability".to_string(),
                            (_, Some(t), _) => format!("{} {}", t.name, t.units).trim().to_string(),
                            (_, _, Some(InputType::Smiles)) => "marks SMILES".into(),
                            (_, _, Some(InputType::Protein)) => "marks proteins".into(),
                            _ => "-".into(),
                        };
                        let kind = format!("{:?}", m.kind).to_lowercase();
                        println!("{:<18} {:<9} {:>3}  {:<22} {}", m.name, kind, m.p, predicts, m.description);
                    }
                    for e in &errors {
                        eprintln!("skipped: {e}");
                    }
                }
                TagsAction::Show { name } => {
                    let t = library.get(name)?;
                    let mut v = serde_json::to_value(&t.meta)?;
                    v["vectors_sha256"] = json!(t.vectors_sha256);
                    // The training examples that gradient steps showed the saved tag (a ridge
                    // start alone: 0); tags from before the count was kept: best step × batch.
                    let prov = &t.meta.provenance;
                    let seen = prov.get("examples_seen").and_then(|v| v.as_u64()).or_else(|| {
                        let step = prov.get("best_step")?.as_u64()?;
                        Some(step * prov.get("options")?.get("batch")?.as_u64()?)
                    });
                    match seen {
                        Some(n) => eprintln!("examples seen: {n}"),
                        None => eprintln!("examples seen: not recorded"),
                    }
                    // The whole run's, where it went on past the kept step.
                    if let Some(n) = prov.get("run_examples_seen").and_then(|v| v.as_u64()).filter(|&n| Some(n) != seen) {
                        eprintln!("examples the whole run saw: {n} (the tag kept is its best step on validation)");
                    }
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads the tag folder; broken files are reported on stderr and skipped. A missing folder is
/// an error only when tags are needed.
fn load_library(dir: &Path, model: &Model, required: bool) -> Result<TagLibrary> {
    if !dir.exists() && !required {
        return Ok(TagLibrary::new());
    }
    let (library, errors) = TagLibrary::load_dir(dir, &model.identity)?;
    for e in errors {
        eprintln!("warning: skipped {e}");
    }
    Ok(library)
}

/// Decides which slot the input lines fill and which slots are fixed (the protein of a
/// two-input tag). Returns the records, the varying slot's index and the fixed values.
fn plan_inputs(
    predictor: &Predictor,
    input: &str,
    column: Option<&str>,
    protein: Option<String>,
) -> Result<(Vec<Record>, usize, Vec<Option<String>>)> {
    let slots = predictor.slots();
    let mut fixed: Vec<Option<String>> = vec![None; slots.len()];
    let varying = if slots.len() == 1 {
        if let Some(p) = protein {
            if slots[0].kind != InputType::Protein {
                bail!("tag `{}` takes no protein", predictor.tag().name());
            }
            // One protein on the command line: it is the only input.
            return Ok((vec![Record { line: 1, text: p.trim().to_string() }], 0, fixed));
        }
        0
    } else {
        let Some(p) = slots.iter().position(|s| s.kind == InputType::Protein) else {
            bail!("tag `{}` takes {} inputs; this command feeds one list plus one protein", predictor.tag().name(), slots.len());
        };
        let Some(protein) = protein else {
            bail!("tag `{}` needs a protein: pass --protein SEQ or --protein-file FILE", predictor.tag().name());
        };
        fixed[p] = Some(protein);
        (0..slots.len()).find(|&i| i != p).unwrap_or(0)
    };
    let kind = match slots[varying].kind {
        InputType::Smiles => InputKind::Smiles,
        InputType::Protein => InputKind::Protein,
    };
    let (text, name) = if input == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read standard input")?;
        (s, None)
    } else {
        let bytes = std::fs::read(input).with_context(|| format!("cannot read {input}"))?;
        (String::from_utf8_lossy(&bytes).into_owned(), Some(input))
    };
    let records = read_records(&text, name, column, kind)?;
    Ok((records, varying, fixed))
}

fn assemble(predictor: &Predictor, varying: usize, fixed: &[Option<String>], text: &str) -> Vec<String> {
    (0..predictor.slots().len())
        .map(|i| if i == varying { text.to_string() } else { fixed[i].clone().unwrap_or_default() })
        .collect()
}

/// How an input is shown in the output: a FASTA record by its header line.
fn shown(text: &str) -> &str {
    if text.starts_with('>') {
        text.lines().next().unwrap_or(text)
    } else {
        text
    }
}

fn write_predictions(
    records: &[Record],
    results: &[std::result::Result<f64, String>],
    format: Format,
    predictor: &Predictor,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Csv => {
            writeln!(out, "input,prediction,error")?;
            for (r, res) in records.iter().zip(results) {
                let (value, err) = match res {
                    Ok(v) => (number(*v), String::new()),
                    Err(e) => (String::new(), e.clone()),
                };
                writeln!(out, "{},{},{}", csv_field(shown(&r.text)), value, csv_field(&err))?;
            }
        }
        Format::Json => {
            let target = predictor.tag().meta.target.as_ref();
            let rows: Vec<_> = records
                .iter()
                .zip(results)
                .map(|(r, res)| {
                    json!({
                        "line": r.line,
                        "input": shown(&r.text),
                        "prediction": res.as_ref().ok(),
                        "error": res.as_ref().err(),
                    })
                })
                .collect();
            let doc = json!({
                "tag": predictor.tag().name(),
                "target": target.map(|t| &t.name),
                "units": target.map(|t| &t.units),
                "results": rows,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
    }
    Ok(())
}

fn evaluate(
    predictor: &Predictor,
    data: &Path,
    input_col: &str,
    target_col: &str,
    protein_col: Option<&str>,
    limit: Option<usize>,
    predictions: Option<&Path>,
) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(data).with_context(|| format!("cannot read {}", data.display()))?;
    let table = parse_csv(&text)?;
    let input_idx = table.column(input_col)?;
    let target_idx = table.column(target_col)?;
    let protein_idx = protein_col.map(|c| table.column(c)).transpose()?;
    let slots = predictor.slots();
    if slots.len() > 1 && protein_idx.is_none() {
        bail!("tag `{}` takes a protein too: pass --protein-col", predictor.tag().name());
    }
    let mut invalid = Vec::new();
    let mut items = Vec::new();
    let mut rows = Vec::new(); // (line, input, target)
    for row in table.rows.iter().take(limit.unwrap_or(usize::MAX)) {
        let input = row.get(input_idx).unwrap_or("").to_string();
        let target = match row.get(target_idx).map(str::trim).map(str::parse::<f64>) {
            Some(Ok(t)) if t.is_finite() => t,
            _ => {
                invalid.push(json!({"line": row.line, "error": format!("target `{}` is not a number", row.get(target_idx).unwrap_or(""))}));
                continue;
            }
        };
        let protein = protein_idx.map(|i| row.get(i).unwrap_or("").to_string());
        let item: Vec<String> = slots
            .iter()
            .map(|s| match (s.kind, &protein) {
                (InputType::Protein, Some(p)) if slots.len() > 1 => p.clone(),
                _ => input.clone(),
            })
            .collect();
        items.push(item);
        rows.push((row.line, input, target));
    }
    let bar = progress(items.len(), "eval");
    let results = predictor.predict_with_progress(&items, |done, _| {
        bar.set_position(done as u64);
        true
    });
    bar.finish_and_clear();
    let mut pred = Vec::new();
    let mut targ = Vec::new();
    for ((line, _, t), r) in rows.iter().zip(&results) {
        match r {
            Ok(v) => {
                pred.push(*v);
                targ.push(*t);
            }
            Err(e) => invalid.push(json!({"line": line, "error": e})),
        }
    }
    if let Some(path) = predictions {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(f, "line,input,target,prediction,error")?;
        for ((line, input, t), r) in rows.iter().zip(&results) {
            let (v, e) = match r {
                Ok(v) => (number(*v), String::new()),
                Err(e) => (String::new(), e.clone()),
            };
            writeln!(f, "{line},{},{t},{v},{}", csv_field(input), csv_field(&e))?;
        }
    }
    let m = metrics::regression_metrics(&pred, &targ);
    let mut report = json!({
        "tag": predictor.tag().name(),
        "data": data.display().to_string(),
        "n": m.n,
        "n_invalid": invalid.len(),
        "mse": m.mse, "rmse": m.rmse, "mae": m.mae,
        "pearson": m.pearson, "spearman": m.spearman, "r2": m.r2,
        "ci": metrics::concordance_index(&pred, &targ),
    });
    if predictor.tag().meta.output == Some(OutputKind::BinaryClassification) {
        let labels: Vec<bool> = targ.iter().map(|&t| t >= 0.5).collect();
        report["auc"] = json!(metrics::roc_auc(&pred, &labels));
        report["accuracy"] = json!(metrics::accuracy(&pred, &labels, 0.5));
    }
    invalid.truncate(100);
    report["invalid"] = json!(invalid);
    Ok(report)
}

fn options(flags: &TrainFlags, eval_every: usize) -> tagllm::train::TrainOptions {
    tagllm::train::TrainOptions {
        steps: flags.steps,
        batch: flags.batch,
        lr: flags.lr,
        weight_decay: flags.weight_decay,
        warmup: 0.03,
        eval_every,
        seed: flags.seed,
        p: flags.p,
        init_examples: flags.init_examples,
        per_group: flags.per_protein,
        lr_head_ratio: flags.lr_head_ratio,
        clip: flags.clip,
        refit_every: flags.refit_every,
    }
}

/// Progress on a terminal as a bar; as log lines every `every` steps otherwise (background runs
/// write to a file).
fn reporter(total: usize, what: &str) -> impl FnMut(&tagllm::train::StepReport) {
    let bar = progress(total, what);
    let every = (total / 50).max(1);
    let mut init_decile = 0;
    move |r| {
        bar.set_position(r.step as u64);
        let valid = r.valid.as_ref().map(|m| format!(" valid r2 {:.3} mse {:.4}", m.r2, m.mse)).unwrap_or_default();
        bar.set_message(format!("loss {:.4}{valid}", r.loss));
        if let Some((done, of)) = r.init {
            bar.set_message(format!("ridge start: {done}/{of} examples"));
            let decile = done * 10 / of.max(1);
            if bar.is_hidden() && decile > init_decile {
                init_decile = decile;
                eprintln!("ridge start: {done}/{of} examples, {:.1} ex/s, eta {:.0}s", r.examples_per_s, r.eta_s);
            }
            return;
        }
        if r.step == 0 {
            // The starting point, validated before any step.
            bar.suspend(|| eprintln!("start (ridge-initialised head):{valid}"));
            return;
        }
        if bar.is_hidden() && (r.step % every == 0 || r.valid.is_some() || r.step == r.total) {
            eprintln!(
                "step {}/{} loss {:.4} lr {:.2e} {:.1} ex/s eta {:.0}s{valid}",
                r.step, r.total, r.loss, r.lr, r.examples_per_s, r.eta_s
            );
        }
        if r.step == r.total {
            bar.finish_and_clear();
        }
    }
}

fn train(cli: &Cli, stage: &TrainStage) -> Result<()> {
    if !matches!(cli.weights, WeightsArg::F32 | WeightsArg::Auto) {
        bail!("training needs --weights f32 (the other kinds have no backward pass)");
    }
    let model = Model::load(&cli.model)?;
    match stage {
        TrainStage::Domain { name, input, corpus, max_lines, flags } => {
            let text = std::fs::read_to_string(corpus).with_context(|| format!("cannot read {}", corpus.display()))?;
            let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).take(*max_lines).map(str::to_string).collect();
            let kind = match input {
                InputArg::Smiles => InputType::Smiles,
                InputArg::Protein => InputType::Protein,
            };
            let out = flags.out.clone().unwrap_or_else(|| cli.tags.join(format!("{name}.safetensors")));
            std::fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
            let started = std::time::Instant::now();
            let (_, first, last) =
                tagllm::train::train_domain_tag(&model, name, kind, &lines, &options(flags, flags.steps), &out, reporter(flags.steps, "train"))?;
            eprintln!("wrote {} (loss {first:.4} → {last:.4}, {:.0}s)", out.display(), started.elapsed().as_secs_f64());
        }
        TrainStage::Probe { template, train, valid, test, predictions, input_cols, target_col, max_train, max_valid, max_test, readout } => {
            let template = tagllm::tags::Template::parse(template)?;
            let library = load_library(&cli.tags, &model, false)?;
            let kinds = template
                .inputs()
                .map(|d| match library.get(d).ok().and_then(|t| t.meta.input) {
                    Some(k) => Ok(k),
                    None if d.eq_ignore_ascii_case("smiles") => Ok(InputType::Smiles),
                    None if d.eq_ignore_ascii_case("protein") => Ok(InputType::Protein),
                    None => bail!("cannot tell what {{{d}}} holds: load its domain tag with --tags"),
                })
                .collect::<Result<Vec<_>>>()?;
            let load = |p: &Path, n: Option<usize>| -> Result<Vec<tagllm::train::Example>> {
                let (mut e, _) = tagllm::train::load_examples(p, input_cols, target_col)?;
                if let Some(n) = n {
                    e.truncate(n);
                }
                Ok(e)
            };
            let started = std::time::Instant::now();
            let valid = match valid {
                Some(v) => load(v, Some(*max_valid))?,
                None => Vec::new(),
            };
            let (report, rows) =
                tagllm::train::probe::no_tag_probe(&model, &template, &kinds, (*readout).into(), &load(train, Some(*max_train))?, &valid, &load(test, *max_test)?)?;
            if let Some(path) = predictions {
                // Test examples keep their file order: the k-th is the k-th data line.
                let mut text = String::from("line,prediction\n");
                for (k, v) in rows {
                    text.push_str(&format!("{},{v}\n", k + 2));
                }
                std::fs::write(path, text)?;
            }
            let mut v = serde_json::to_value(&report)?;
            v["wall_s"] = json!(started.elapsed().as_secs_f64());
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        TrainStage::Function {
            name, template, train, valid, input_cols, target_col, output, target_name, units, description, range,
            max_train, max_valid, eval_every, readout, flags,
        } => {
            let library = load_library(&cli.tags, &model, true)?;
            let (mut train_set, skipped) = tagllm::train::load_examples(train, input_cols, target_col)?;
            if let Some(n) = max_train {
                train_set.truncate(*n);
            }
            let (valid_set, _) = tagllm::train::load_examples(valid, input_cols, target_col)?;
            let valid_set = tagllm::train::validation_subset(valid_set, *max_valid, flags.per_protein);
            eprintln!("{} training examples ({skipped} rows without a numeric target), {} for validation", train_set.len(), valid_set.len());
            let plan = tagllm::train::FunctionPlan {
                name: name.clone(),
                template: template.clone(),
                output: match output {
                    OutputArg::Regression => OutputKind::Regression,
                    OutputArg::Binary => OutputKind::BinaryClassification,
                },
                target_name: target_name.clone().unwrap_or_else(|| name.clone()),
                units: units.clone(),
                description: description.clone(),
                readout: (*readout).into(),
                range: match range.as_deref() {
                    Some(&[lo, hi]) if lo < hi => Some((lo, hi)),
                    Some(r) => bail!("--range takes LO,HI with LO < HI, not {r:?}"),
                    None => None,
                },
            };
            let out = flags.out.clone().unwrap_or_else(|| cli.tags.join(format!("{name}.safetensors")));
            let started = std::time::Instant::now();
            let tag = tagllm::train::train_function_tag(
                &model, &library, &plan, &options(flags, *eval_every), &train_set, &valid_set, &out, reporter(flags.steps, "train"),
            )?;
            eprintln!(
                "wrote {} (best at step {}, {:.0}s)",
                out.display(),
                tag.meta.provenance.get("best_step").cloned().unwrap_or_default(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Peak resident memory of this process (Linux: VmHWM), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn bench(cli: &Cli, tag: &str, backend: &str, as_json: bool) -> Result<()> {
    if backend == "gpu" {
        #[cfg(feature = "gpu")]
        return bench_gpu(cli, tag, as_json);
        #[cfg(not(feature = "gpu"))]
        bail!("backend `gpu` needs a build with the GPU backend: cargo build --release --features gpu");
    }
    if backend != "cpu" {
        bail!("unknown backend `{backend}`: `cpu` or `gpu`");
    }
    let start = std::time::Instant::now();
    let now = move || start.elapsed().as_secs_f64() * 1000.0;
    let t = now();
    let model = Model::load_with(&cli.model, cli.weights.for_predictions())?;
    let load_ms = now() - t;
    let library = load_library(&cli.tags, &model, true)?;
    let predictor = Predictor::new(&model, &library, tag)?;
    let threads = candle_core::utils::get_num_threads();
    let report = tagllm::bench::run(&model, &predictor, backend, &now)?;
    // The high-water mark of the predictions (before the second model below).
    let peak = peak_rss_mb();
    // Training runs on f32 weights: a second model, loaded after the prediction figures.
    let train_model = Model::load(&cli.model)?;
    let train_library = load_library(&cli.tags, &train_model, true)?;
    let training = tagllm::bench::training(&train_model, &train_library, tag, report.molecules, 16, &now)?;
    drop((train_library, train_model));
    if as_json {
        let mut v = serde_json::to_value(&report)?;
        v["training"] = serde_json::to_value(&training)?;
        v["threads"] = json!(threads);
        v["kernel_path"] = json!(format!("{:?}", tagllm::model::int8::KernelPath::best()));
        v["generate_weights"] = json!(cli.weights.for_generation().name());
        v["model_load_ms"] = json!(load_ms);
        v["peak_rss_mb"] = json!(peak);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let weights = &report.weights;
    println!("tagllm bench: backend {backend}, {threads} threads, weights {weights}, model {}", cli.model.display());
    println!("model load (GGUF parse + {weights} weights): {load_ms:.0} ms");
    let kernel = if weights == "int8" || weights == "int16" {
        format!("kernel ({weights}, {:?})", tagllm::model::int8::KernelPath::best())
    } else if weights == "amx" {
        "kernel (amx, bf16 × 3)".to_string()
    } else {
        "kernel (f32 matmul)".to_string()
    };
    println!("{kernel:<28} {:>9} {:>9} {:>9}", "ms", "GFLOP/s", "GB/s");
    for k in &report.kernels {
        println!("{:<28} {:>9.3} {:>9.2} {:>9.2}", k.name, k.ms, k.gflops, k.gb_per_s);
    }
    for p in &report.prefill {
        println!("prefill {:>4} tokens: {:>8.1} ms  {:>8.1} tokens/s", p.tokens, p.ms, p.tokens_per_s);
    }
    println!("decode: {:.1} tokens/s ({} tokens, greedy, with logits)", report.decode_tokens_per_s, report.decode_tokens);
    let generate = cli.weights.for_generation().name();
    if generate != weights {
        println!("  (`tagllm generate` decodes with {generate} weights here: `tagllm --weights {generate} bench`)");
    }
    println!("{} over {} molecules: {:.2} molecules/s", report.molecules_tag, report.molecules, report.molecules_per_s);
    println!(
        "training <{}> over {} examples: {:.2} examples/s (batch {}, f32 weights; {:.2}x the molecules/s above)",
        training.tag,
        training.examples,
        training.examples_per_s,
        training.batch,
        training.examples_per_s / report.molecules_per_s
    );
    if let Some(mb) = peak {
        println!("peak resident memory: {mb:.0} MB");
    }
    Ok(())
}

/// Prefill on the GPU backend: the forward pass over 50 and 512 tokens (the CPU bench's
/// prompts), median of 3 after a warm-up pass that builds the buffers for the length (1 on a
/// software adapter such as lavapipe, where a pass takes minutes). The embeddings are built on
/// the CPU and uploaded, the hidden states read back: both are timed. Then molecules/s of `tag`
/// over the benchmark SMILES (the first 10 on a software adapter), as predictions run on the GPU.
#[cfg(feature = "gpu")]
fn bench_gpu(cli: &Cli, tag: &str, as_json: bool) -> Result<()> {
    use tagllm::gpu::{block_on, Gpu, GpuLlama};
    use tagllm::model::{GgufFile, Weights};
    let start = std::time::Instant::now();
    let now = move || start.elapsed().as_secs_f64() * 1000.0;
    let gpu = Gpu::new_blocking()?;
    let adapter = gpu.describe();
    let reps = if gpu.info.device_type == wgpu::DeviceType::Cpu { 1 } else { 3 };
    let file = GgufFile::open(&cli.model)?;
    let t = now();
    let mut llama = GpuLlama::new(gpu, &file)?;
    let upload_ms = now() - t;
    let model = Model::from_gguf(file, Weights::Quantized)?;
    let prefill = [50, 512]
        .into_iter()
        .map(|n| block_on(tagllm::bench::gpu_prefill(&model, &mut llama, n, reps, &now)))
        .collect::<tagllm::Result<Vec<_>>>()?;
    // Matrix products on the model's own weights (layer 0) at 1 and 64 rows.
    let mut kernels = Vec::new();
    for m in [1, 64] {
        for (name, m, k, n, ms, weight_bytes) in block_on(llama.time_matmuls(m, if reps == 1 { 3 } else { 50 }, &now))? {
            // The weights' blocks as stored, x and y in f32.
            let bytes = (weight_bytes + 4 * (m * k + m * n)) as f64;
            kernels.push(json!({ "name": name, "m": m, "k": k, "n": n, "ms": ms,
                                 "gflops": 2.0 * (m * k * n) as f64 / ms / 1e6, "gb_per_s": bytes / ms / 1e6 }));
        }
    }
    // Decoding: single-token passes with the KV cache after a 16-token prompt, the LM head (tied
    // Q8_0 embedding) in the same pass, the logits read back.
    let decode_tokens = if reps == 1 { 4 } else { 32 };
    let decode_tokens_per_s = block_on(tagllm::bench::gpu_decode(&model, &mut llama, decode_tokens, &now))?;
    let library = load_library(&cli.tags, &model, true)?;
    let predictor = Predictor::new(&model, &library, tag)?;
    let count = if reps == 1 { 10 } else { 100 };
    let (molecules, failed, molecules_per_s) = block_on(tagllm::bench::gpu_molecules(&predictor, &mut llama, count, &now))?;
    if failed > 0 {
        bail!("{failed} benchmark molecules failed");
    }
    if as_json {
        let v = json!({ "backend": "gpu", "adapter": adapter, "weights_upload_ms": upload_ms, "kernels": kernels,
                        "prefill": prefill, "decode_tokens": decode_tokens, "decode_tokens_per_s": decode_tokens_per_s,
                        "molecules": molecules, "molecules_tag": tag, "molecules_per_s": molecules_per_s });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("tagllm bench: backend gpu, adapter {adapter}, model {}", cli.model.display());
    println!("weights upload (raw Q4_1 blocks): {upload_ms:.0} ms");
    println!("{:<34} {:>9} {:>9} {:>9}", "kernel (layer 0's weights)", "ms", "GFLOP/s", "GB/s");
    for k in &kernels {
        println!("{:<34} {:>9.3} {:>9.2} {:>9.2}", k["name"].as_str().unwrap_or(""), k["ms"].as_f64().unwrap_or(0.0),
                 k["gflops"].as_f64().unwrap_or(0.0), k["gb_per_s"].as_f64().unwrap_or(0.0));
    }
    for p in &prefill {
        println!("prefill {:>4} tokens: {:>8.1} ms  {:>8.1} tokens/s", p.tokens, p.ms, p.tokens_per_s);
    }
    println!("decode: {decode_tokens_per_s:.1} tokens/s ({decode_tokens} tokens, greedy; the LM head on the GPU)");
    println!("{tag} over {} molecules: {molecules_per_s:.2} molecules/s (the shared prefix once, 8 inputs per pass)", molecules);
    Ok(())
}
