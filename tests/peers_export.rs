//! The files `benches/peers.rs` hands to the Python side (`scripts/bench/peers.py`) and the report
//! that joins both, on a tiny case: the format round-trips, the weights carry torchvision's names,
//! the report computes the ratios (paired run by run) and flags maps that disagree; and the handle
//! on the Python peer server turns its failures (an error, death, silence) into errors, not hangs.

#[path = "../benches/peers/export.rs"]
mod export;
#[path = "../benches/peers/server.rs"]
mod server;

use cnn_explain::models::{build, weights, Arch};
use cnn_explain::prelude::*;
use export::*;
use std::path::Path;

fn timed(model: &str, batch: i64, method: &str, who: &str, times: &[f64]) -> TimedRow {
    TimedRow {
        model: model.into(),
        batch,
        method: method.into(),
        who: who.into(),
        times: times.to_vec(),
        images: batch,
        note: String::new(),
        floor_times: Vec::new(),
        pre_run: false,
    }
}

#[test]
fn weights_and_inputs_round_trip_with_torchvision_names() {
    let dir = tempfile::tempdir().unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = build(Arch::SmallCnn, &vs.root(), 6).unwrap();
    weights::save(&vs, dir.path().join("small_cnn.safetensors")).unwrap();
    let saved = read_tensors(&dir.path().join("small_cnn.safetensors")).unwrap();
    // The names peers.py's SmallCnn (scripts/bench/pytorch_train.py) has, buffers included.
    for name in [
        "conv1.weight",
        "bn1.weight",
        "bn1.running_mean",
        "bn1.num_batches_tracked",
        "block1.conv.weight",
        "block3.bn.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(saved.contains_key(name), "{name} missing from {:?}", saved.keys());
    }
    assert_eq!(saved.len(), vs.variables().len());
    assert!(saved["fc.weight"].equal(&vs.variables()["fc.weight"]));

    let xs = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let classes = model.logits(&xs).unwrap().argmax(1, false);
    let path = dir.path().join(input_file("small_cnn", 2));
    write_tensors(
        &path,
        &[
            ("input".into(), xs.shallow_clone()),
            ("targets".into(), classes.shallow_clone()),
        ],
    )
    .unwrap();
    let back = read_tensors(&path).unwrap();
    assert!(back["input"].equal(&xs));
    assert_eq!(back["targets"].kind(), Kind::Int64);
    assert!(back["targets"].equal(&classes));
    assert_eq!(input_file("small_cnn", 2), "small_cnn_b2_input.safetensors");
    assert_eq!(peer_maps_file("resnet18", 16), "resnet18_b16_peers.safetensors");
}

#[test]
fn a_run_carried_to_another_machine_gets_the_same_weights_and_files() {
    // The bench's weights come from seed 0: made twice, they have the same digest, which a resumed
    // run (PEERS_CARRY, the work folder not kept) checks before going on.
    let digest = |f: &dyn Fn(&tch::nn::VarStore)| {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        build(Arch::SmallCnn, &vs.root(), 6).unwrap();
        f(&vs);
        weights_digest(&vs).unwrap()
    };
    let a = digest(&|_| ());
    assert!(a.starts_with("fnv1a64:") && a.len() == 24, "{a}");
    assert_eq!(a, digest(&|_| ()));
    // One weight one ulp up, or a buffer changed, is another digest.
    let b = digest(&|vs| {
        let w = &vs.variables()["fc.weight"];
        let v = w.double_value(&[0, 0]) as f32;
        tch::no_grad(|| {
            let _ = w.get(0).get(0).fill_(f64::from(f32::from_bits(v.to_bits() + 1)));
        });
    });
    assert_ne!(a, b);
    let c = digest(&|vs| {
        tch::no_grad(|| {
            let _ = vs.variables()["bn1.running_mean"].get(0).fill_(0.5);
        });
    });
    assert_ne!(a, c);

    // The run's JSON files go to the carry folder (made if missing) and back.
    let dir = tempfile::tempdir().unwrap();
    let (work, carry) = (dir.path().join("work"), dir.path().join("keep/r50"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("crate.json"), "{\"a\": 1}").unwrap();
    let err = copy_run_files(&work, &carry).unwrap_err().to_string();
    assert!(err.contains("peers.json"), "{err}");
    std::fs::write(work.join("peers.json"), "{\"b\": 2}").unwrap();
    copy_run_files(&work, &carry).unwrap();
    let back = dir.path().join("new-work");
    copy_run_files(&carry, &back).unwrap();
    assert_eq!(
        std::fs::read_to_string(back.join("crate.json")).unwrap(),
        "{\"a\": 1}"
    );
    assert_eq!(
        std::fs::read_to_string(back.join("peers.json")).unwrap(),
        "{\"b\": 2}"
    );

    // PEERS_METHODS: known rows only, and an empty list is every row.
    assert_eq!(methods_from("").unwrap(), None);
    assert_eq!(
        methods_from(" scorecam, floor ").unwrap(),
        Some(vec!["scorecam".to_string(), "floor".to_string()])
    );
    let err = methods_from("scorecam,score-cam").unwrap_err().to_string();
    assert!(
        err.contains("\"score-cam\"") && err.contains("train_epoch"),
        "{err}"
    );

    // The crate's sources: the same tree, the same digest; one byte more in a file under src/, or
    // a file more, another.
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(pkg.join("src/a")).unwrap();
    std::fs::write(pkg.join("Cargo.toml"), "[package]").unwrap();
    std::fs::write(pkg.join("Cargo.lock"), "# lock").unwrap();
    std::fs::write(pkg.join("src/lib.rs"), "mod a;").unwrap();
    std::fs::write(pkg.join("src/a/mod.rs"), "fn f() {}").unwrap();
    let s1 = source_digest(&pkg).unwrap();
    assert_eq!(s1, source_digest(&pkg).unwrap());
    std::fs::write(pkg.join("src/a/mod.rs"), "fn f() { }").unwrap();
    let s2 = source_digest(&pkg).unwrap();
    assert_ne!(s1, s2);
    std::fs::write(pkg.join("src/a/b.rs"), "").unwrap();
    assert_ne!(s2, source_digest(&pkg).unwrap());
    assert!(source_digest(&dir.path().join("nowhere")).is_err());
    assert!(source_digest(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .starts_with("fnv1a64:"));

    // A model entry from before the digest was kept reads with an empty one.
    let old: ModelInfo = serde_json::from_str(
        r#"{"name": "resnet50", "classes": 1000, "size": 224, "layer": "layer4", "weights": "resnet50.safetensors"}"#,
    )
    .unwrap();
    assert!(old.digest.is_empty());
}

#[test]
fn report_joins_rows_ratios_and_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let map = Tensor::from_slice(&[0f32, 1., 2., 3., 4., 5., 6., 7.]).view([2, 1, 2, 2]);
    let other = Tensor::from_slice(&[0f32, 1., 2., 3., 7., 6., 5., 4.]).view([2, 1, 2, 2]);
    write_tensors(
        &d.join(crate_maps_file("m", 2)),
        &[
            ("gradcam".into(), map.shallow_clone()),
            ("layercam".into(), map.shallow_clone()),
        ],
    )
    .unwrap();
    write_tensors(
        &d.join(peer_maps_file("m", 2)),
        &[
            // The same map at another scale and offset: agrees.
            ("gradcam/pgc".into(), &map * 10.0 + 3.0),
            // Sample 1 reversed: normalised difference 1.
            ("layercam/pgc".into(), other),
        ],
    )
    .unwrap();
    let run = CrateRun {
        threads: 2,
        warmup: 1,
        reps: 3,
        load: vec!["1.0 1.0 1.0".into(), "2.0 1.0 1.0".into()],
        settings: vec![],
        allocator: String::new(),
        order: String::new(),
        models: vec![],
        cases: vec![CaseInfo {
            model: "m".into(),
            batch: 2,
            input: input_file("m", 2),
            maps: crate_maps_file("m", 2),
        }],
        rows: vec![
            timed("m", 2, "floor", "crate", &[0.4, 0.2, 0.3]),
            timed("m", 2, "gradcam", "crate", &[0.2, 0.3, 0.9]),
            timed("m", 2, "layercam", "crate", &[0.3]),
        ],
        train: None,
        partial: false,
        unfinished: None,
        resumed: 0,
        source: String::new(),
        cpu: String::new(),
    };
    let peers = PeerRun {
        threads: 2,
        versions: [("torch".to_string(), "2.13.0".to_string())]
            .into_iter()
            .collect(),
        load: vec![],
        rows: vec![
            timed("m", 2, "gradcam", "pgc", &[0.6, 0.6, 0.6]),
            timed("m", 2, "layercam", "pgc", &[0.15]),
        ],
    };
    // Both files round-trip through JSON.
    write_json(&d.join("crate.json"), &run).unwrap();
    write_json(&d.join("peers.json"), &peers).unwrap();
    let run: CrateRun = read_json(&d.join("crate.json")).unwrap();
    let peers: PeerRun = read_json(&d.join("peers.json")).unwrap();

    let rows = report_rows(d, &run, &peers).unwrap();
    assert_eq!(rows.len(), 3);
    let floor = &rows[0];
    assert_eq!((floor.method.as_str(), floor.peer.as_deref()), ("floor", None));
    assert_eq!(floor.crate_s_per_image, 0.15); // median 0.3 s for 2 images
    assert_eq!(floor.crate_spread, (0.1, 0.2));
    let gc = &rows[1];
    assert_eq!(gc.crate_s_per_image, 0.15);
    assert_eq!(gc.crate_over_floor, Some(1.0));
    assert_eq!(gc.peer.as_deref(), Some("pgc"));
    assert!((gc.peer_over_crate.unwrap() - 2.0).abs() < 1e-12);
    assert_eq!(gc.agreement_metric.as_deref(), Some("max_abs_diff"));
    assert!(gc.agreement.unwrap() < 1e-12);
    assert_eq!(gc.agrees, Some(true));
    let lc = &rows[2];
    assert!((lc.peer_over_crate.unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(lc.agreement, Some(1.0));
    assert_eq!(lc.agrees, Some(false));

    let md = markdown(&rows, &run, &peers);
    assert!(md.contains("| m | 2 | gradcam | 0.1500 [0.1000, 0.4500] | 1.00 | pgc | 0.3000 [0.3000, 0.3000] | 2.00 | 0.0e0 ok |"), "{md}");
    assert!(md.contains("| **0.50** |"), "a slower crate is marked: {md}");
    assert!(md.contains("DIFFERS"), "{md}");
    assert!(!md.contains("Partial run"), "{md}");
    // A run saved after a row, before it finished: the table says so. Runs written before the
    // field existed read as finished.
    let mut partial = run.clone();
    partial.partial = true;
    let md = markdown(&rows, &partial, &peers);
    assert!(
        md.starts_with("**Partial run**: it stopped after the 3 rows below"),
        "{md}"
    );
    assert!(!md.contains("PEERS_RESUME") && !md.contains("resumed"), "{md}");
    let mut old = serde_json::to_value(&run).unwrap();
    old.as_object_mut().unwrap().remove("partial");
    assert!(!serde_json::from_value::<CrateRun>(old).unwrap().partial);
}

#[test]
fn a_stopped_run_says_where_to_go_on_and_refuses_other_settings() {
    let run = CrateRun {
        threads: 2,
        warmup: 1,
        reps: 5,
        load: vec!["1.0 1.0 1.0".into()],
        settings: vec!["lime: 1,000 samples".into()],
        allocator: "crate kept".into(),
        order: "1 warm-up".into(),
        models: vec![],
        cases: vec![],
        rows: vec![
            timed("m", 16, "forward", "crate", &[0.1]),
            timed("m", 16, "forward", "torch", &[0.1]),
        ],
        train: None,
        partial: true,
        unfinished: Some(UnfinishedRow {
            model: "m".into(),
            batch: 16,
            method: "lime".into(),
            reps: 5,
            pre_run: false,
            mine: vec![10.0, 11.0],
            floor: vec![0.1, 0.1],
            peers: vec![("lime".into(), vec![15.0, 16.0])],
        }),
        resumed: 1,
        source: String::new(),
        cpu: String::new(),
    };
    // Finished rows are the crate's; a peer's row alone does not count.
    assert!(run.finished("m", 16, "forward"));
    assert!(!run.finished("m", 1, "forward"));
    assert!(!run.finished("m", 16, "lime"));
    let mut peer_only = run.clone();
    peer_only.rows.remove(0);
    assert!(!peer_only.finished("m", 16, "forward"));
    // The stopped row is taken up only by the same row with the same peers in the same order.
    let lime = ["lime".to_string()];
    assert_eq!(
        run.unfinished_row("m", 16, "lime", &lime).unwrap().mine,
        [10.0, 11.0]
    );
    assert!(run.unfinished_row("m", 1, "lime", &lime).is_none());
    assert!(run.unfinished_row("m", 16, "occlusion", &lime).is_none());
    assert!(run.unfinished_row("m", 16, "lime", &[]).is_none());
    assert!(run
        .unfinished_row("m", 16, "lime", &["lime".into(), "captum".into()])
        .is_none());
    // It round-trips through crate.json, and a file without it reads as having none.
    let back: CrateRun = serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();
    assert_eq!(back, run);
    let mut old = serde_json::to_value(&run).unwrap();
    old.as_object_mut().unwrap().remove("unfinished");
    assert!(serde_json::from_value::<CrateRun>(old)
        .unwrap()
        .unfinished
        .is_none());
    // The partial table names the stopped row and how far it got.
    let md = markdown(
        &[],
        &run,
        &PeerRun {
            threads: 2,
            versions: Default::default(),
            load: run.load.clone(),
            rows: vec![],
        },
    );
    assert!(
        md.contains("The row after them (m b16 lime) had finished 2 of its 5 timed rounds; `PEERS_RESUME=1` goes on from there."),
        "{md}"
    );
    assert!(md.contains("stopped and resumed 1 time(s)"), "{md}");
    // Stopped inside a round (saved after every call): the rounds all sides finished, and who is
    // a call ahead.
    let mut inside = run.clone();
    let u = inside.unfinished.as_mut().unwrap();
    u.peers = vec![
        ("pgc".into(), vec![15.0, 16.0, 17.0]),
        ("tc".into(), vec![15.0, 16.0]),
    ];
    assert_eq!((u.rounds_done(), u.calls_ahead()), (2, vec!["pgc"]));
    u.mine.push(12.0);
    assert_eq!((u.rounds_done(), u.calls_ahead()), (2, vec!["crate", "pgc"]));
    u.peers[0].1.truncate(1);
    assert_eq!((u.rounds_done(), u.calls_ahead()), (1, vec!["crate", "tc"]));
    let md = markdown(
        &[],
        &inside,
        &PeerRun {
            threads: 2,
            versions: Default::default(),
            load: vec![],
            rows: vec![],
        },
    );
    assert!(
        md.contains("had finished 1 of its 5 timed rounds (and the next round's call of crate, tc);"),
        "{md}"
    );

    // Resuming needs the same settings; each difference is named.
    assert!(run.check_resumable(&run.clone()).is_ok());
    let mut now = run.clone();
    now.rows.clear();
    now.unfinished = None;
    now.load = vec!["2.0 2.0 2.0".into()];
    assert!(run.check_resumable(&now).is_ok(), "rows and load may differ");
    // The crate's sources: compared only where both runs kept them.
    now.source = "fnv1a64:0000000000000001".into();
    assert!(
        run.check_resumable(&now).is_ok(),
        "a run before the digest was kept"
    );
    let mut kept = run.clone();
    kept.source = "fnv1a64:0000000000000002".into();
    let err = kept.check_resumable(&now).unwrap_err().to_string();
    assert!(
        err.contains("the crate's sources") && err.contains("(now fnv1a64:0000000000000001)"),
        "{err}"
    );
    now.source = kept.source.clone();
    assert!(kept.check_resumable(&now).is_ok());
    // The machine: the same kind of CPU, where both runs kept it.
    kept.cpu = "AMD EPYC (family 25, model 17), 2 cores".into();
    assert!(
        kept.check_resumable(&now).is_ok(),
        "a run before the CPU was kept"
    );
    now.cpu = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz (family 6, model 106), 2 cores".into();
    let err = kept.check_resumable(&now).unwrap_err().to_string();
    assert!(err.contains("the machine: \"AMD EPYC"), "{err}");
    now.cpu = kept.cpu.clone();
    assert!(kept.check_resumable(&now).is_ok());
    let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n";
    assert_eq!(
        cpu_from_cpuinfo(cpuinfo),
        "AMD EPYC (family 25, model 17), 2 cores"
    );
    assert_eq!(cpu_from_cpuinfo(""), "");
    // The folder of a run carried over sittings: one per kind of CPU, the names the carried runs
    // in benches/peers-runs/ have.
    assert_eq!(cpu_kind(cpuinfo).as_deref(), Some("amd-epyc-family25-model17"));
    let xeon = "processor\t: 0\ncpu family\t: 6\nmodel\t\t: 106\nmodel name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\n";
    assert_eq!(
        cpu_kind(xeon).as_deref(),
        Some("intel-r-xeon-r-platinum-8375c-cpu-2-90ghz-family6-model106")
    );
    assert_eq!(cpu_kind(""), None);
    assert_eq!(
        carry_folder("runs/scorecam/{cpu}", cpuinfo).unwrap(),
        Path::new("runs/scorecam/amd-epyc-family25-model17")
    );
    assert_eq!(
        carry_folder("runs/scorecam", "").unwrap(),
        Path::new("runs/scorecam")
    );
    let err = carry_folder("runs/{cpu}", "").unwrap_err().to_string();
    assert!(err.contains("PEERS_CARRY") && err.contains("names none"), "{err}");
    now.threads = 1;
    now.reps = 3;
    let err = run.check_resumable(&now).unwrap_err().to_string();
    assert!(
        err.contains("threads 2 (now 1)") && err.contains("timed runs 5 (now 3, PEERS_REPS)"),
        "{err}"
    );
    let mut now = run.clone();
    now.allocator = "glibc".into();
    now.settings.push("more".into());
    let err = run.check_resumable(&now).unwrap_err().to_string();
    assert!(
        err.contains("allocator") && err.contains("method settings"),
        "{err}"
    );
    assert!(!err.contains("threads"), "{err}");
}

#[test]
fn random_methods_are_compared_by_correlation() {
    assert!(is_random("lime") && is_random("smoothgrad"));
    assert!(!is_random("gradcam") && !is_random("occlusion"));
    assert!(known_difference("gradcampp", "torchcam").is_some());
    assert!(known_difference("gradcam", "torchcam").is_none());
}

#[test]
fn ratios_pair_each_run_with_the_run_next_to_it() {
    // Per-run ratios 4, 0.5, 2: median 2, where the ratio of the medians is 2 / 2 = 1.
    assert_eq!(paired_ratio(&[1.0, 2.0, 4.0], &[0.25, 4.0, 2.0]), 2.0);
    // Runs that do not pair up: the ratio of the medians.
    assert_eq!(paired_ratio(&[1.0, 2.0, 3.0], &[2.0]), 1.0);

    let dir = tempfile::tempdir().unwrap();
    let mut sal = timed("m", 1, "saliency", "crate", &[1.0, 2.0, 4.0]);
    sal.floor_times = vec![0.25, 4.0, 2.0];
    let run = CrateRun {
        threads: 2,
        warmup: 1,
        reps: 3,
        load: vec!["1.00 1.00 1.00".into(), "3.00 2.00 1.00".into()],
        settings: vec![],
        allocator: String::new(),
        order: String::new(),
        models: vec![],
        cases: vec![],
        rows: vec![timed("m", 1, "floor", "crate", &[10.0, 10.0, 10.0]), sal],
        train: None,
        partial: false,
        unfinished: None,
        resumed: 0,
        source: String::new(),
        cpu: String::new(),
    };
    let peers = PeerRun {
        threads: 2,
        versions: Default::default(),
        load: run.load.clone(),
        // Per-run ratios to the crate 3, 1, 2: median 2 (ratio of the medians: 3 / 2).
        rows: vec![timed("m", 1, "saliency", "captum", &[3.0, 2.0, 8.0])],
    };
    let rows = report_rows(dir.path(), &run, &peers).unwrap();
    let sal = &rows[1];
    // The floor timed next to each run, not the floor row (which would give 2 / 10).
    assert_eq!(sal.crate_over_floor, Some(2.0));
    assert_eq!(sal.peer_over_crate, Some(2.0));
    assert_eq!(sal.crate_s_per_image, 2.0);
    assert_eq!(sal.peer_s_per_image, Some(3.0));
    // The floor row's own ratio stays empty; the row round-trips with its floor times.
    assert_eq!(rows[0].crate_over_floor, None);
    let json = serde_json::to_string(&run.rows[1]).unwrap();
    let back: TimedRow = serde_json::from_str(&json).unwrap();
    assert_eq!(back.floor_times, vec![0.25, 4.0, 2.0]);
    // Rows written without floor times (the field is optional) still read.
    let old = r#"{"model":"m","batch":1,"method":"x","who":"crate","times":[1.0],"images":1}"#;
    assert!(serde_json::from_str::<TimedRow>(old)
        .unwrap()
        .floor_times
        .is_empty());

    let md = markdown(&rows, &run, &peers);
    assert!(
        md.contains("at the start -> end of the run: 1.00 1.00 1.00 -> 3.00 2.00 1.00"),
        "{md}"
    );
    assert!(
        md.contains("| m | 1 | saliency | 2.00 [1.00, 4.00] | 2.00 | captum | 3.00 [2.00, 8.00] | 2.00 |"),
        "{md}"
    );
    // A run that states its order: the header says it, and rows timed without pre-runs are marked.
    let mut run = run;
    run.order = "the order of this run".into();
    run.rows[1].pre_run = true;
    let rows = report_rows(dir.path(), &run, &peers).unwrap();
    assert!(rows[1].pre_run && !rows[0].pre_run);
    let md = markdown(&rows, &run, &peers);
    assert!(
        md.contains("one side running at a time: the order of this run."),
        "{md}"
    );
    assert!(md.contains("| m | 1 | saliency | 2.00 ["), "{md}");
    assert!(md.contains("| m | 1 | floor * | "), "{md}");
    assert!(!md.contains('†'), "{md}");

    // A peer called another way than the other rows (its note, from the server's `finish`): the
    // table marks it and says how under the table.
    let mut peers = peers;
    peers.rows[0].note = "one image per call: the batch call needs 26.3 GB".into();
    let rows = report_rows(dir.path(), &run, &peers).unwrap();
    assert_eq!(rows[1].peer_as_run, peers.rows[0].note);
    assert!(rows[0].peer_as_run.is_empty());
    let md = markdown(&rows, &run, &peers);
    assert!(md.contains("| captum † | 3.00 ["), "{md}");
    assert!(
        md.contains("\n† captum on m at batch 1: one image per call: the batch call needs 26.3 GB.\n"),
        "{md}"
    );
}

/// A stand-in for the Python peer server: a shell script that says hello, then does `rest`.
#[cfg(unix)]
fn fake_server(rest: &str, timeout_ms: u64) -> Result<server::PeerServer> {
    let script = format!("echo '{{\"ok\": true, \"threads\": 2}}'; {rest}");
    server::PeerServer::spawn(
        "sh",
        &["-c".to_string(), script],
        &[],
        std::time::Duration::from_millis(timeout_ms),
    )
}

#[cfg(unix)]
#[test]
fn peer_server_gets_the_environment_it_is_given() {
    // PEERS_PY_KEEP_FREED=1 hands the Python side glibc's settings through its environment.
    let s = server::PeerServer::spawn(
        "sh",
        &[
            "-c".to_string(),
            r#"echo "{\"ok\": true, \"mmap\": \"$MALLOC_MMAP_MAX_\"}"; read l; echo '{"ok": true}'"#
                .to_string(),
        ],
        &[("MALLOC_MMAP_MAX_", "0")],
        std::time::Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(s.hello["mmap"], "0");
    s.quit().unwrap();
}

#[cfg(unix)]
#[test]
fn peer_server_answers_and_its_failures_are_errors_not_hangs() {
    use serde_json::json;
    // Answers one `run`, then reports an error, then quits when asked.
    let mut s = fake_server(
        r#"read l; echo '{"ok": true, "seconds": 0.25}'; read l; echo '{"ok": true, "as_run": "one image per call"}'; read l; echo '{"ok": true}'; read l; echo '{"ok": true, "seconds": 1.5}'; read l; echo '{"ok": true}'; read l; echo '{"ok": false, "error": "ValueError: no case loaded"}'; read l; echo '{"ok": true}'"#,
        20_000,
    )
    .unwrap();
    assert_eq!(s.hello["threads"], 2);
    assert_eq!(s.run("gradcam", "torchcam", 0).unwrap(), 0.25);
    // `finish` answers how the peer was called (empty when the server does not say).
    assert_eq!(
        s.finish("scorecam", "pytorch-grad-cam").unwrap(),
        "one image per call"
    );
    assert_eq!(s.finish("gradcam", "torchcam").unwrap(), "");
    // A resumed row's warm-up on the first image answers its seconds; an answer without is an error.
    assert_eq!(s.warm_first_image("lime", "lime", 0).unwrap(), 1.5);
    let e = s.warm_first_image("lime", "lime", 0).unwrap_err().to_string();
    assert!(e.contains("answered without `seconds`"), "{e}");
    let e = s
        .call(json!({"cmd": "prepare", "method": "gradcam"}))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("failed `prepare`") && e.contains("ValueError: no case loaded"),
        "{e}"
    );
    s.quit().unwrap();

    // Dies in the middle of a command: the error names the command and the exit status.
    let mut s = fake_server("read l; exit 3", 20_000).unwrap();
    let e = s.run("lime", "lime", 1).unwrap_err().to_string();
    assert!(e.contains("stopped while running `run`"), "{e}");
    assert!(e.contains("exit status: 3"), "{e}");
    // Later commands fail too, at once.
    assert!(s.run("lime", "lime", 2).is_err());

    // Answers with something that is not JSON.
    let mut s = fake_server(
        "read l; echo 'Traceback (most recent call last):'; read l",
        20_000,
    )
    .unwrap();
    let e = s.call(json!({"cmd": "save"})).unwrap_err().to_string();
    assert!(e.contains("not JSON") && e.contains("Traceback"), "{e}");

    // Never answers: given up after the timeout and killed.
    let mut s = fake_server("exec sleep 60", 300).unwrap();
    let e = s.run("ig", "captum", 0).unwrap_err().to_string();
    assert!(e.contains("did not answer `run`") && e.contains("killed"), "{e}");
    // A call its warm-up showed to be long gets 3 times that before it is taken for hung; the
    // timeout is back to the given one for the next call.
    let mut s = fake_server(
        r#"read l; sleep 1; echo '{"ok": true, "seconds": 1.0}'; read l; sleep 1; echo '{"ok": true, "seconds": 1.0}'"#,
        300,
    )
    .unwrap();
    assert_eq!(s.run_expecting("scorecam", "torchcam", 1, 0.5).unwrap(), 1.0);
    let e = s.run("scorecam", "torchcam", 2).unwrap_err().to_string();
    assert!(e.contains("within 0.3 s"), "{e}");

    // Cannot start at all.
    let e = server::PeerServer::spawn("/nonexistent/python", &[], &[], std::time::Duration::from_secs(1))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("/nonexistent/python"), "{e}");
}
