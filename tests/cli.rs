//! The `tagllm` binary as users and scripts call it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn tagllm(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagllm"));
    cmd.current_dir(common::repo_root()).args(args);
    cmd.arg("--model").arg(common::model_path());
    match stdin {
        Some(text) => {
            use std::io::Write;
            cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        }
        None => cmd.output().unwrap(),
    }
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn generate_greedy_says_paris() {
    let out = tagllm(&["generate", "--prompt", "The capital of France is", "--max-tokens", "3", "--temperature", "0"], None);
    assert!(stdout(&out).starts_with(" Paris"), "{}", stdout(&out));
}

#[test]
fn predict_gives_a_number_per_valid_line_and_an_error_per_invalid_one() {
    let dir = common::test_tag_dir("predict");
    let input = "CCO\nC1CC\nc1ccccc1\nXx(\nCC(=O)Oc1ccccc1C(=O)O aspirin\n";
    let out = tagllm(&["predict", "--tags", dir.to_str().unwrap(), "--tag", "QED"], Some(input));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("input,prediction,error"));
    let rows: Vec<Vec<String>> = lines.map(split_csv).collect();
    assert_eq!(rows.len(), 5, "{text}");
    for (i, row) in rows.iter().enumerate() {
        let valid = [0, 2, 4].contains(&i);
        assert_eq!(row[1].parse::<f64>().is_ok(), valid, "row {i}: {row:?}");
        assert_eq!(row[2].is_empty(), valid, "row {i}: {row:?}");
    }
    assert!(rows[1][2].contains("ring bond 1"), "{:?}", rows[1]);
    assert!(rows[3][2].contains("Xx"), "{:?}", rows[3]);
    assert_eq!(rows[4][0], "CC(=O)Oc1ccccc1C(=O)O");

    // JSON carries the same numbers.
    let out = tagllm(&["predict", "--tags", dir.to_str().unwrap(), "--tag", "QED", "--format", "json"], Some(input));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    let csv_value: f64 = rows[0][1].parse().unwrap();
    assert!((results[0]["prediction"].as_f64().unwrap() - csv_value).abs() < 1e-3);
    assert!(results[1]["prediction"].is_null() && results[1]["error"].is_string());
}

#[test]
fn predict_binding_affinity_for_one_protein_and_many_molecules() {
    let dir = common::test_tag_dir("affinity");
    let protein = ">sp|P00533|EGFR_HUMAN fragment\nMRPSGTAGAALLALLAALCPASRALEEKKVCQGTSNKLTQLGTFEDHFLSLQRMFNNCEVVLGNLEITYVQRNYDLSFLKTIQEVAGYVLIALNTVERIPLENLQIIRGNMYYENSYALAVLSNYDANKTGLKELPMRNLQEILHGAVRFSNNPALCNVESIQWRDIVSSDFLSNMSMDFQNHLGSCQKCDPSCPNGSCWGAGEENCQKLTKIICAQQCSGRCRGKSPSDCCHNQCAAGCTGPRESDCLVCRKFRDEATCKDTCPPLMLYNPTTYQMDVNPEGKYSFGATCVKKCPRNYVVTDHGSCVRACGADSYEMEEDGVRKCKKCEGPCRKVCNGIGIGEFKDSLSINATNIKHFKNCTSISGDLHILPVAFRGDSFTHTPPLDPQELDILKTVKEITGFLLIQAWPENRTDLHAFENLEIIRGRTKQHGQFSLAVVSLNITSLGLRSLKEISDGDVIISGNKNLCYANTINWKKLFGTSGQKTKIISNRGENSCKATGQVCHALCSPEGCWGPEPRDCVSCRNVSRGRECVDKCNLLEGEPREFVENSECIQCHPECLPQAMNITCTGRGPDNCIQCAHYIDGPHCVKTCPAGVMGENNTLVWKYADAGHVCHLCHPNCTYGCTGPGLEGCPTNGPKIPSIATGMVGALLLLLVVALGIGLFM\n";
    let pfile = dir.join("egfr.fasta");
    std::fs::write(&pfile, protein).unwrap();
    let out = tagllm(
        &["predict", "--tags", dir.to_str().unwrap(), "--tag", "BindingAffinity", "--protein-file", pfile.to_str().unwrap()],
        Some("COc1cc2ncnc(Nc3ccc(F)c(Cl)c3)c2cc1OCCCN1CCOCC1\nCC\nnot a smiles\n"),
    );
    let text = stdout(&out);
    let rows: Vec<Vec<String>> = text.lines().skip(1).map(split_csv).collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[0][1].parse::<f64>().is_ok() && rows[1][1].parse::<f64>().is_ok(), "{text}");
    assert!(!rows[2][2].is_empty());
    // Without a protein the tag says what it needs.
    let out = tagllm(&["predict", "--tags", dir.to_str().unwrap(), "--tag", "BindingAffinity"], Some("CC\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--protein"));
}

#[test]
fn eval_metrics_match_hand_computed_values() {
    let dir = common::test_tag_dir("eval");
    let data = dir.join("data.csv");
    std::fs::write(
        &data,
        "smiles,qed\nCCO,0.41\nc1ccccc1,0.44\nC1CC,0.5\nCC(=O)Oc1ccccc1C(=O)O,0.55\nCCN(CC)CC,0.47\nCCCl,n/a\nO=C(O)c1ccccc1O,0.61\n",
    )
    .unwrap();
    let preds = dir.join("preds.csv");
    let out = tagllm(
        &["eval", "--tags", dir.to_str().unwrap(), "--tag", "QED", "--data", data.to_str().unwrap(),
          "--input-col", "smiles", "--target-col", "qed", "--predictions", preds.to_str().unwrap()],
        None,
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["n"], 5);
    assert_eq!(report["n_invalid"], 2, "{report}");
    // Recompute from the per-row predictions, by hand.
    let text = std::fs::read_to_string(&preds).unwrap();
    let (mut p, mut t) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f = split_csv(line);
        if let Ok(v) = f[3].parse::<f64>() {
            p.push(v);
            t.push(f[2].parse::<f64>().unwrap());
        }
    }
    assert_eq!(p.len(), 5);
    let n = p.len() as f64;
    let mse = p.iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n;
    let mae = p.iter().zip(&t).map(|(a, b)| (a - b).abs()).sum::<f64>() / n;
    let mt = t.iter().sum::<f64>() / n;
    let mp = p.iter().sum::<f64>() / n;
    let r2 = 1.0 - mse * n / t.iter().map(|x| (x - mt).powi(2)).sum::<f64>();
    let cov: f64 = p.iter().zip(&t).map(|(a, b)| (a - mp) * (b - mt)).sum();
    let pearson = cov / (p.iter().map(|a| (a - mp).powi(2)).sum::<f64>().sqrt() * t.iter().map(|b| (b - mt).powi(2)).sum::<f64>().sqrt());
    let close = |key: &str, v: f64| {
        let got = report[key].as_f64().unwrap();
        // The predictions file rounds to 4 decimals.
        assert!((got - v).abs() < 2e-3 * v.abs().max(1.0), "{key}: report {got}, by hand {v}");
    };
    close("mse", mse);
    close("rmse", mse.sqrt());
    close("mae", mae);
    close("r2", r2);
    close("pearson", pearson);
    assert!(report["spearman"].as_f64().unwrap().abs() <= 1.0);
}

#[test]
fn tags_list_and_show() {
    let dir = common::test_tag_dir("list");
    std::fs::write(dir.join("broken.safetensors"), b"not a tag").unwrap();
    let out = tagllm(&["tags", "list", "--tags", dir.to_str().unwrap()], None);
    let text = stdout(&out);
    for name in ["SMILES", "Protein", "QED", "BindingAffinity"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.safetensors"));
    let out = tagllm(&["tags", "show", "QED", "--tags", dir.to_str().unwrap()], None);
    let meta: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(meta["kind"], "function");
    assert_eq!(meta["requires"][0]["name"], "SMILES");
    // The shipped tags say how many examples their gradient steps saw.
    let shipped = common::repo_root().join("tags");
    let out = tagllm(&["tags", "show", "QED", "--tags", shipped.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&out.stderr);
    let seen = err.lines().find_map(|l| l.strip_prefix("examples seen: ")).unwrap_or_else(|| panic!("{err}"));
    assert!(seen.parse::<u64>().is_ok(), "{err}");
}

#[test]
fn a_bad_model_file_is_refused_with_a_fix() {
    let dir = common::Scratch::new("badmodel");
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(common::model_path()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"<html>404</html>").unwrap();
    for (path, expected) in [(truncated.as_path(), "truncated"), (junk.as_path(), "not a GGUF file"), (Path::new("/no/such/model.gguf"), "cannot read")] {
        let out = Command::new(env!("CARGO_BIN_EXE_tagllm"))
            .args(["generate", "--prompt", "x", "--model"])
            .arg(path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected) && err.contains("scripts/setup.sh"), "{err}");
    }
    // Over the size limit: refused before it is read (a sparse file: no disk space used).
    let huge = dir.join("huge.gguf");
    std::fs::File::create(&huge).unwrap().set_len(tagllm::model::gguf::MAX_MODEL_FILE_BYTES + 1).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tagllm")).args(["generate", "--prompt", "x", "--model"]).arg(&huge).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the file is 1.1 GB") && err.contains("at most 1.1 GB"), "{err}");
}

/// A minimal CSV line splitter for the tool's own output (quotes, doubled quotes).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
}

#[test]
fn bench_prints_every_figure() {
    let dir = common::test_tag_dir("bench");
    let out = tagllm(&["--tags", dir.to_str().unwrap(), "bench", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let positive = |x: &serde_json::Value| x.as_f64().is_some_and(|f| f.is_finite() && f > 0.0);
    assert_eq!(v["molecules"], 100);
    assert_eq!(v["molecules_tag"], "QED");
    assert!(positive(&v["molecules_per_s"]) && positive(&v["decode_tokens_per_s"]) && positive(&v["model_load_ms"]), "{v}");
    let prefill: Vec<u64> = v["prefill"].as_array().unwrap().iter().map(|p| p["tokens"].as_u64().unwrap()).collect();
    assert_eq!(prefill, [50, 512]);
    assert!(v["prefill"].as_array().unwrap().iter().all(|p| positive(&p["tokens_per_s"])));
    assert!(v["kernels"].as_array().unwrap().len() >= 8 && v["kernels"].as_array().unwrap().iter().all(|k| positive(&k["gflops"])));
    // An unknown backend is refused by name.
    let tpu = tagllm(&["--tags", dir.to_str().unwrap(), "bench", "--backend", "tpu"], None);
    assert!(!tpu.status.success() && String::from_utf8_lossy(&tpu.stderr).contains("unknown backend `tpu`"), "{tpu:?}");
    // `gpu` needs a build with the GPU backend, and says so without it. (With it, on lavapipe,
    // the GPU benchmark takes ~4 minutes; tests/gpu_parity.rs checks that path's numbers.)
    if !cfg!(feature = "gpu") {
        let gpu = tagllm(&["--tags", dir.to_str().unwrap(), "bench", "--backend", "gpu"], None);
        assert!(!gpu.status.success() && String::from_utf8_lossy(&gpu.stderr).contains("--features gpu"), "{gpu:?}");
    }
}
