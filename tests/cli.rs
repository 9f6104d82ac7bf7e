//! End-to-end tests of the `cnn-explain` binary on tiny built-in data and small image folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cnn-explain"));
    c.env("OMP_WAIT_POLICY", "PASSIVE");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Runs a command that must fail with `code` and print exactly one line `error: ...` holding
/// every one of `needles`.
fn fails(args: &[&str], code: i32, needles: &[&str]) {
    let out = run(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: stderr {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: `{n}` not in: {err}");
    }
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

const TINY: [&str; 14] = [
    "--data",
    "shapes",
    "--images",
    "48",
    "--val-images",
    "16",
    "--test-images",
    "16",
    "--image-size",
    "32",
    "--batch",
    "16",
    "--device",
    "cpu",
];

fn train_tiny(out: &Path, epochs: usize) -> Output {
    let e = epochs.to_string();
    let o = out.to_str().unwrap();
    let mut args: Vec<&str> = vec!["train"];
    args.extend(TINY);
    args.extend(["--epochs", &e, "--out", o]);
    ok(&args)
}

fn json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["train", "evaluate", "explain", "merge"] {
        let out = ok(&[sub, "--help"]);
        let help = text(&out.stdout);
        assert!(help.contains("Usage: cnn-explain"), "{sub}: {help}");
    }
    assert!(text(&ok(&["explain", "--help"]).stdout).contains("--shard"));
    assert!(text(&ok(&["train", "--help"]).stdout).contains("--resume"));
}

#[test]
fn train_evaluate_explain_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let runp = dir.path().join("run");
    let out = train_tiny(&runp, 2);
    assert!(text(&out.stderr).contains("epoch 2/2"), "{}", text(&out.stderr));
    let rf = json(&runp.join("run.json"));
    assert_eq!(rf["format"], "cnn-explain-run");
    assert_eq!(rf["version"], 1);
    assert_eq!(rf["status"], "finished");
    assert_eq!(rf["model"]["num_classes"], 6);
    assert_eq!(rf["train"]["batch_size"], 16);
    for f in [
        "history.json",
        "model.safetensors",
        "checkpoints/last.state.safetensors",
        "checkpoints/best.safetensors",
    ] {
        assert!(runp.join(f).is_file(), "{f} missing");
    }
    let history = json(&runp.join("history.json"));
    let epochs = history["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);

    // evaluate: the final weights give the accuracy the history recorded for the last epoch.
    let out = ok(&["evaluate", s(&runp), "--device", "cpu"]);
    assert!(text(&out.stdout).contains("macro average"));
    let m = json(&runp.join("eval/metrics.json"));
    assert_eq!(m["format"], "cnn-explain-evaluation");
    assert_eq!(m["version"], 1);
    assert_eq!(m["images"], 16);
    assert_eq!(m["accuracy"].as_f64(), epochs[1]["test_accuracy"].as_f64());
    let counts = &json(&runp.join("eval/confusion.json"))["counts"];
    let counts: Vec<Vec<u64>> = serde_json::from_value(counts.clone()).unwrap();
    assert_eq!(counts.iter().flatten().sum::<u64>(), 16);
    let correct: u64 = (0..6).map(|i| counts[i][i]).sum();
    assert!((correct as f64 / 16.0 - m["accuracy"].as_f64().unwrap()).abs() < 1e-12);
    assert_eq!(m["per_class"].as_array().unwrap().len(), 6);
    for f in ["confusion.png", "evolution.png", "curves.png"] {
        let bytes = std::fs::read(runp.join("eval").join(f)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{f}");
    }

    // explain the misclassified test images: as many as the confusion matrix's off-diagonal.
    let ex = dir.path().join("ex");
    ok(&[
        "explain",
        s(&runp),
        "--device",
        "cpu",
        "--select",
        "misclassified",
        "--count",
        "100",
        "--methods",
        "saliency,grad-cam",
        "--target",
        "top-k:2",
        "--out",
        s(&ex),
    ]);
    let index = json(&ex.join("index.json"));
    assert_eq!(index["format"], "cnn-explain-explanations");
    assert_eq!(index["layer"], "block3");
    let items = index["items"].as_array().unwrap();
    assert_eq!(items.len() as u64, 16 - correct);
    let html = std::fs::read_to_string(ex.join("index.html")).unwrap();
    for it in items {
        let stem = it["stem"].as_str().unwrap();
        assert!(html.contains(&format!("{stem}.png")));
        assert_ne!(it["true_class"], it["predicted"]);
        let one = json(&ex.join(format!("{stem}.json")));
        assert_eq!(one["format"], "cnn-explain-explanation");
        let probs = one["probabilities"].as_array().unwrap();
        let total: f64 = probs.iter().map(|p| p["probability"].as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        let targets = one["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 2);
        // top-k:2 explains the two most probable classes, most probable first.
        assert_eq!(targets[0]["index"], probs[0]["index"]);
        assert_eq!(targets[1]["index"], probs[1]["index"]);
        let maps = targets[0]["maps"].as_array().unwrap();
        assert_eq!(maps[0]["method"], "saliency");
        assert_eq!(maps[0]["shape"], serde_json::json!([1, 3, 32, 32]));
        assert_eq!(maps[1]["shape"], serde_json::json!([1, 1, 32, 32]));
        // Grad-CAM maps are normalised to [0, 1].
        assert!(maps[1]["max"].as_f64().unwrap() <= 1.0 && maps[1]["min"].as_f64().unwrap() >= 0.0);
        assert!(ex.join(format!("{stem}.png")).is_file());
    }

    // The unstable selection reads the history; random is reproducible by seed.
    let un = dir.path().join("un");
    ok(&[
        "explain",
        s(&runp),
        "--device",
        "cpu",
        "--select",
        "unstable",
        "--count",
        "3",
        "--out",
        s(&un),
    ]);
    assert_eq!(json(&un.join("index.json"))["items"].as_array().unwrap().len(), 3);
}

#[test]
fn resume_continues_like_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    train_tiny(&a, 1);
    ok(&["train", "--resume", s(&a), "--epochs", "2", "--device", "cpu"]);
    train_tiny(&b, 2);
    let (ha, hb) = (json(&a.join("history.json")), json(&b.join("history.json")));
    assert_eq!(ha["epochs"].as_array().unwrap().len(), 2);
    for key in ["train_loss", "val_loss", "test_accuracy", "lr"] {
        assert_eq!(ha["epochs"][1][key], hb["epochs"][1][key], "{key}");
    }
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    // Nothing left to do: a clear message, success.
    let out = ok(&["train", "--resume", s(&a), "--device", "cpu"]);
    assert!(text(&out.stderr).contains("already has 2 of 2 epochs"));
}

#[test]
#[cfg(unix)] // sends SIGINT with kill(1)
fn ctrl_c_leaves_a_resumable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let runp = dir.path().join("run");
    let mut args: Vec<&str> = vec!["train"];
    args.extend(TINY);
    args.extend(["--epochs", "400", "--out", s(&runp)]);
    let child = bin()
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let history = runp.join("history.json");
    let t0 = std::time::Instant::now();
    while !history.exists() {
        assert!(t0.elapsed().as_secs() < 60, "no epoch finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: stopping after batch"), "{err}");
    assert!(err.contains("--resume"), "{err}");
    let rf = json(&runp.join("run.json"));
    assert_eq!(rf["status"], "interrupted");
    let done = json(&history)["epochs"].as_array().unwrap().len();
    assert!(done < 400, "{done}");
    assert!(runp.join("checkpoints/last.state.safetensors").is_file());
    assert!(!runp.join("model.safetensors").exists());
    // Continue for two more epochs.
    let more = (done + 2).to_string();
    ok(&[
        "train",
        "--resume",
        s(&runp),
        "--epochs",
        &more,
        "--device",
        "cpu",
    ]);
    assert_eq!(json(&history)["epochs"].as_array().unwrap().len(), done + 2);
    assert_eq!(json(&runp.join("run.json"))["status"], "finished");
    assert!(runp.join("model.safetensors").is_file());
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p: PathBuf| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn shards_merge_into_the_unsharded_result() {
    let dir = tempfile::tempdir().unwrap();
    let runp = dir.path().join("run");
    train_tiny(&runp, 1);
    let common = [
        "--device",
        "cpu",
        "--select",
        "random",
        "--count",
        "5",
        "--seed",
        "3",
        "--methods",
        "grad-cam,smoothgrad",
        "--target",
        "top-k:2",
    ];
    let explain = |out: &Path, shard: Option<&str>| {
        let mut args = vec!["explain", s(&runp)];
        args.extend(common);
        args.extend(["--out", s(out)]);
        if let Some(sh) = shard {
            args.extend(["--shard", sh]);
        }
        ok(&args);
    };
    let (whole, s0, s1, merged) = (
        dir.path().join("whole"),
        dir.path().join("s0"),
        dir.path().join("s1"),
        dir.path().join("merged"),
    );
    explain(&whole, None);
    explain(&s0, Some("0/2"));
    explain(&s1, Some("1/2"));
    let (n0, n1) = (
        json(&s0.join("index.json"))["items"].as_array().unwrap().len(),
        json(&s1.join("index.json"))["items"].as_array().unwrap().len(),
    );
    assert_eq!((n0, n1), (3, 2));
    assert_eq!(json(&s1.join("index.json"))["shard"], "1/2");
    // A merge needs every shard.
    fails(
        &["merge", s(&s0), "--out", s(&merged)],
        1,
        &["shard(s) 1/2 missing"],
    );
    fails(
        &["merge", s(&s0), s(&s0), "--out", s(&merged)],
        1,
        &["holds shard 0/2 again"],
    );
    ok(&["merge", s(&s1), s(&s0), "--out", s(&merged)]);
    let (a, b) = (files(&whole), files(&merged));
    assert_eq!(a.len(), 2 * 5 + 2);
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        b.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{name} differs between the unsharded and the merged result"
        );
    }
    // Shards of different settings do not merge.
    let other = dir.path().join("other");
    let mut args = vec!["explain", s(&runp)];
    args.extend(common);
    args.extend(["--out", s(&other), "--shard", "1/2", "--layer", "block2"]);
    ok(&args);
    fails(
        &["merge", s(&s0), s(&other), "--out", s(&merged)],
        1,
        &["other settings"],
    );
}

/// Two classes of 8x8 PNGs: reddish and bluish, with a little variation.
fn image_folder(root: &Path) {
    for (c, rgb) in [("blue", [20u8, 40, 200]), ("red", [200u8, 30, 20])] {
        let d = root.join(c);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..8u8 {
            let img = image::RgbImage::from_fn(8, 8, |x, y| {
                let v = (x as u8 * 3 + y as u8 * 5 + i * 7) % 30;
                image::Rgb([
                    rgb[0].saturating_add(v),
                    rgb[1].saturating_add(v),
                    rgb[2].saturating_sub(v),
                ])
            });
            img.save(d.join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn folder_dataset_and_explicit_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pics");
    image_folder(&data);
    let runp = dir.path().join("run");
    let spec = format!("folder:{}", data.display());
    ok(&[
        "train",
        "--data",
        &spec,
        "--image-size",
        "16",
        "--epochs",
        "2",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--test-fraction",
        "0.25",
        "--val-fraction",
        "0.25",
        "--augment",
        "flip",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--out",
        s(&runp),
    ]);
    let rf = json(&runp.join("run.json"));
    assert_eq!(rf["class_names"], serde_json::json!(["blue", "red"]));
    assert_eq!(rf["augment"], serde_json::json!(["flip"]));
    let m = {
        ok(&["evaluate", s(&runp), "--device", "cpu"]);
        json(&runp.join("eval/metrics.json"))
    };
    assert_eq!(m["images"], 4); // a quarter of 16
    let ex = dir.path().join("ex");
    let img = data.join("red/3.png");
    ok(&[
        "explain",
        s(&runp),
        "--device",
        "cpu",
        "--image",
        s(&img),
        "--methods",
        "occlusion,eigen-cam",
        "--target",
        "true",
        "--out",
        s(&ex),
    ]);
    let index = json(&ex.join("index.json"));
    assert_eq!(index["select"], "images");
    let stem = index["items"][0]["stem"].as_str().unwrap().to_string();
    assert_eq!(stem, "0000-3");
    let one = json(&ex.join(format!("{stem}.json")));
    assert_eq!(one["true_class"]["name"], "red");
    assert_eq!(one["targets"][0]["name"], "red");
    assert_eq!(
        one["targets"][0]["maps"][0]["shape"],
        serde_json::json!([1, 1, 16, 16])
    );
    // With --weights instead of a run folder.
    let w = runp.join("model.safetensors");
    let ex2 = dir.path().join("ex2");
    ok(&[
        "explain",
        "--weights",
        s(&w),
        "--data",
        &spec,
        "--arch",
        "small_cnn",
        "--image-size",
        "16",
        "--device",
        "cpu",
        "--image",
        s(&img),
        "--methods",
        "occlusion,eigen-cam",
        "--target",
        "true",
        "--out",
        s(&ex2),
    ]);
    assert_eq!(
        std::fs::read(ex.join(format!("{stem}.json"))).unwrap(),
        std::fs::read(ex2.join(format!("{stem}.json"))).unwrap()
    );
}

#[test]
fn errors_in_paths_specs_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let m = s(&missing);
    // Wrong paths.
    fails(&["evaluate", m, "--device", "cpu"], 1, &["run folder not found"]);
    fails(
        &["evaluate", s(dir.path()), "--device", "cpu"],
        1,
        &["no run.json"],
    );
    let folder = format!("folder:{m}");
    fails(
        &["train", "--data", &folder, "--out", m, "--device", "cpu"],
        1,
        &["folder not found"],
    );
    fails(
        &["train", "--data", "cifar10:/no/such/dir", "--out", m],
        1,
        &["/no/such/dir"],
    );
    fails(&["explain", "--image", m], 1, &["image file not found"]);
    // Dataset specs that cannot be parsed.
    fails(
        &["train", "--data", "imagenet", "--out", m],
        1,
        &["cannot read dataset spec `imagenet`", "folder:DIR"],
    );
    fails(
        &["train", "--data", "mnist:/x", "--out", m],
        1,
        &["unknown kind `mnist`"],
    );
    // Other bad options.
    fails(
        &["train", "--arch", "resnet19", "--out", m],
        1,
        &["unknown architecture `resnet19`", "resnet18"],
    );
    fails(
        &["train", "--optimizer", "rmsprop", "--out", m],
        1,
        &["unknown optimiser `rmsprop`"],
    );
    fails(
        &["train", "--schedule", "step:x", "--out", m],
        1,
        &["step:EVERY:GAMMA"],
    );
    fails(
        &["train", "--device", "tpu", "--out", m],
        1,
        &["unknown device `tpu`"],
    );
    fails(&["train", "--epochs", "many"], 2, &["--epochs"]);
    fails(
        &["explain", "--methods", "saliency,magic"],
        1,
        &["unknown method `magic`", "grad-cam++", "lime"],
    );
    fails(&["explain", "--select", "best"], 1, &["unknown selection `best`"]);
    fails(&["explain", "--target", "top-k:0"], 1, &["top-k:K"]);
    fails(
        &["explain", "--shard", "2/2"],
        1,
        &["shard index 2 is out of range for 2 shards"],
    );
    fails(
        &["explain", "--weights", m, "--device", "cpu"],
        1,
        &["--data SPEC and --arch NAME"],
    );
    assert!(text(&ok(&["explain", "--methods", "list"]).stdout).contains("score-cam"));
    let pics = dir.path().join("pics");
    image_folder(&pics);
    let spec = format!("folder:{}", pics.display());
    fails(
        &[
            "train",
            "--data",
            &spec,
            "--test-fraction",
            "0",
            "--out",
            m,
            "--device",
            "cpu",
        ],
        1,
        &["`test_fraction`: 0 of 16 images is no image"],
    );
    // Nothing was left behind by the failed commands.
    assert!(!missing.exists());
}

#[test]
fn errors_about_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let runp = dir.path().join("run");
    train_tiny(&runp, 1);
    let r = s(&runp);
    let missing = dir.path().join("nope");
    let m = s(&missing);
    fails(&["train", "--out", r], 1, &["already holds a run"]);
    fails(
        &["explain", r, "--device", "cpu", "--layer", "block9"],
        1,
        &["unknown layer `block9`", "block3", "conv1"],
    );
    // Weights for another model.
    let w = runp.join("model.safetensors");
    fails(
        &[
            "explain",
            "--weights",
            s(&w),
            "--data",
            "shapes",
            "--images",
            "12",
            "--val-images",
            "6",
            "--test-images",
            "6",
            "--image-size",
            "32",
            "--arch",
            "resnet18",
            "--out",
            m,
            "--device",
            "cpu",
        ],
        1,
        &["weights are for another model, not resnet18 with 6 classes"],
    );
    // A run folder of another format version.
    let old = dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    let mut rf = json(&runp.join("run.json"));
    rf["version"] = serde_json::json!(99);
    std::fs::write(old.join("run.json"), serde_json::to_vec(&rf).unwrap()).unwrap();
    fails(
        &["evaluate", s(&old), "--device", "cpu"],
        1,
        &["version 99", "reads version 1 only"],
    );
    fails(&["train", "--resume", s(&old)], 1, &["version 99"]);
}

/// A CIFAR-10 folder in the distributed binary layout: five training batches of 4 records, a test
/// batch of 6, class names beside them; each image a flat colour that depends on its label.
fn cifar10_folder(root: &Path) {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(label * 25, 3072));
        r
    };
    for b in 1..=5u8 {
        let bytes: Vec<u8> = (0..4u8).flat_map(|i| record((b + i) % 10)).collect();
        std::fs::write(dir.join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    let test: Vec<u8> = (0..6u8).flat_map(record).collect();
    std::fs::write(dir.join("test_batch.bin"), test).unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
}

#[test]
fn cifar10_spec_and_starting_weights() {
    let dir = tempfile::tempdir().unwrap();
    cifar10_folder(dir.path());
    let spec = format!("cifar10:{}", dir.path().display());
    let runp = dir.path().join("run");
    ok(&[
        "train",
        "--data",
        &spec,
        "--val-fraction",
        "0.2",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--device",
        "cpu",
        "--out",
        s(&runp),
    ]);
    let rf = json(&runp.join("run.json"));
    assert_eq!(rf["model"]["image_size"], 32);
    assert_eq!(rf["class_names"][9], "truck");
    ok(&["evaluate", s(&runp), "--device", "cpu"]);
    assert_eq!(json(&runp.join("eval/metrics.json"))["images"], 6);
    // Starting from these 10-class weights on the 6-class shapes data keeps all but the head.
    let w = runp.join("model.safetensors");
    let second = dir.path().join("second");
    let mut args: Vec<&str> = vec!["train"];
    args.extend(TINY);
    args.extend(["--epochs", "1", "--weights", s(&w), "--out", s(&second)]);
    let out = ok(&args);
    assert!(
        text(&out.stderr).contains("kept new weights for fc.bias, fc.weight"),
        "{}",
        text(&out.stderr)
    );
    // Weights of another architecture do not start a run.
    let mut args: Vec<&str> = vec!["train"];
    args.extend(TINY);
    let third = dir.path().join("third");
    args.extend([
        "--epochs",
        "1",
        "--arch",
        "resnet18",
        "--weights",
        s(&w),
        "--out",
        s(&third),
    ]);
    fails(
        &args,
        1,
        &["weights are for another model, not resnet18 with 6 classes"],
    );
    assert!(!third.exists());
}

#[test]
fn penalty_options_reach_the_run_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args: Vec<&str> = vec!["train"];
    args.extend(TINY);
    args.extend([
        "--epochs",
        "1",
        "--cue",
        "0.9",
        "--penalty",
        "2.5",
        "--penalty-region",
        "cue",
        "--penalty-score",
        "centred-logit",
        "--out",
        s(&out),
    ]);
    ok(&args);
    let run = json(&out.join("run.json"));
    assert_eq!(run["train"]["penalty"]["weight"], 2.5);
    assert_eq!(run["train"]["penalty"]["region"], "given");
    assert_eq!(run["train"]["penalty"]["score"], "centred_true_class_logit");
    let history = json(&out.join("history.json"));
    assert_eq!(history["epochs"][0]["penalty"]["weight"], 2.5);
    assert!(history["epochs"][0]["penalty"]["mean"].as_f64().unwrap() > 0.0);
    let other = dir.path().join("other");
    fails(
        &[
            "train",
            "--penalty",
            "1",
            "--penalty-region",
            "sky",
            "--out",
            s(&other),
        ],
        1,
        &["unknown region `sky`", "outside-object or cue"],
    );
    fails(
        &[
            "train",
            "--penalty",
            "1",
            "--penalty-region",
            "cue",
            "--out",
            s(&other),
        ],
        1,
        &["--cue FRACTION"],
    );
    fails(
        &["train", "--penalty", "1", "--augment", "flip", "--out", s(&other)],
        1,
        &["--augment"],
    );
}
