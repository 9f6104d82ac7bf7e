//! The live monitor: its HTTP refusals (token, malformed body, absurd values) on a finished run, and
//! end to end in headless Chromium: train with `--monitor`, wait for the second epoch on the page,
//! click stop, check that training ended early, that the history records the stop and that the
//! checkpoint loads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cnn-explain"));
    c.env("OMP_WAIT_POLICY", "PASSIVE");
    c
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

fn json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// Kills a child process on drop (a failed assertion must not leave a server or a browser behind).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads lines of `stream` on a thread; returns the first one holding `needle` (within `timeout`)
/// and a receiver of all lines.
fn watch_lines<R: Read + Send + 'static>(
    stream: R,
    needle: &'static str,
    timeout: Duration,
) -> (String, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < timeout {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains(needle) => return (line, rx),
            Ok(line) => seen.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!(
        "no line with `{needle}` within {timeout:?}; got:\n{}",
        seen.join("\n")
    );
}

/// The URL's `(port, token)`: `http://127.0.0.1:PORT/?token=T`.
fn parse_url(line: &str) -> (u16, String) {
    let url = &line[line.find("http://").expect("a URL")..];
    let rest = url.trim_start_matches("http://127.0.0.1:");
    let (port, rest) = rest.split_once('/').expect("a path");
    let token = rest.trim_start_matches("?token=").trim().to_string();
    (port.parse().expect("a port"), token)
}

/// A minimal HTTP/1.1 client: `(status, body)`.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the monitor listens");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read the head, then Content-Length bytes (DevTools keeps the connection open).
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {head}"));
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body).unwrap();
        }
        None => {
            r.read_to_end(&mut body).unwrap();
        }
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `train` on the tiny data; `images` training images.
fn train(dir: &Path, epochs: usize, images: usize, extra: &[&str]) -> Command {
    let mut c = bin();
    let n = images.to_string();
    let tiny: Vec<&str> = TINY
        .iter()
        .map(|a| if *a == "48" { n.as_str() } else { a })
        .collect();
    c.arg("train")
        .args(tiny)
        .args(["--epochs", &epochs.to_string(), "--out"])
        .arg(dir)
        .args(extra);
    c
}

#[test]
fn refuses_bad_token_malformed_bodies_and_absurd_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = train(&dir, 2, 48, &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut child = bin()
        .args(["monitor", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Guard(child);
    let (line, _) = watch_lines(stdout, "http://", Duration::from_secs(60));
    let (port, token) = parse_url(&line);
    assert_eq!(token.len(), 32, "{line}");

    assert_eq!(http(port, "GET", "/", "").0, 403);
    let (code, body) = http(port, "GET", "/?token=0123", "");
    assert_eq!(code, 403);
    assert!(body.contains("wrong token"), "{body}");
    let (code, body) = http(port, "GET", &format!("/?token={token}"), "");
    assert_eq!(code, 200);
    assert!(body.contains("cnn-explain monitor") && !body.contains("http://") && !body.contains("https://"));
    for path in ["/events", "/api/state", "/probe/0.png"] {
        assert_eq!(http(port, "GET", path, "").0, 403, "{path}");
    }
    assert_eq!(http(port, "POST", "/api/request", r#"{"type":"stop"}"#).0, 403);

    let post = |body: &str| http(port, "POST", &format!("/api/request?token={token}"), body);
    let (code, body) = post("{not json");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("malformed request"), "{body}");
    let (code, body) = post(r#"{"type":"set_learning_rate","lr":"fast"}"#);
    assert_eq!(code, 400, "{body}");
    for lr in ["-0.1", "0", "1e9"] {
        let (code, body) = post(&format!(r#"{{"type":"set_learning_rate","lr":{lr}}}"#));
        assert_eq!(code, 400, "{lr}: {body}");
        assert!(body.contains("must be a finite number in (0, 10]"), "{body}");
    }
    let (code, body) = post(r#"{"type":"add_probe","index":16}"#);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("unknown probe image 16") && body.contains("0..=15"),
        "{body}"
    );
    // Sensible values, but the run has finished: 409, nothing written.
    let (code, body) = post(r#"{"type":"set_learning_rate","lr":0.01}"#);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("not running"), "{body}");
    let control = dir.join("control");
    assert!(!control.exists() || std::fs::read_dir(&control).unwrap().next().is_none());

    let (code, body) = http(port, "GET", &format!("/api/state?token={token}"), "");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["history"]["epochs"], 2, "{body}");
    assert_eq!(v["progress"]["alive"], false, "{body}");
    assert_eq!(
        http(port, "GET", &format!("/probe/0.png?token={token}"), "").0,
        200
    );
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for d in std::env::split_paths(&path) {
            let p = d.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A Chrome DevTools Protocol session on one page.
struct Cdp {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Cdp {
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next += 1;
        let id = self.next;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params });
        self.ws.send(tungstenite::Message::text(msg.to_string())).unwrap();
        loop {
            let m = self.ws.read().expect("the browser answers");
            if let tungstenite::Message::Text(t) = m {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    fn eval(&mut self, expr: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expr, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    fn screenshot(&mut self, path: &str) {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", serde_json::json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    fn wait_for(&mut self, expr: &str, timeout: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.eval(expr);
            if v.as_bool() == Some(true) {
                return v;
            }
            assert!(start.elapsed() < timeout, "`{expr}` not true within {timeout:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Connects to the page target of `browser` (DevTools on `port`) whose URL starts with `url`.
fn page_session(devtools_port: u16, url_start: &str) -> Cdp {
    let start = Instant::now();
    loop {
        let (_, body) = http(devtools_port, "GET", "/json/list", "");
        let targets: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let ws = targets.as_array().and_then(|a| {
            a.iter()
                .find(|t| t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url_start)))
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(String::from))
        });
        if let Some(ws) = ws {
            let (ws, _) = tungstenite::connect(ws).expect("DevTools websocket");
            return Cdp { ws, next: 0 };
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no page target: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn drain(rx: &mpsc::Receiver<String>) -> String {
    rx.try_iter().collect::<Vec<_>>().join("\n")
}

#[test]
fn stop_from_the_page_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        println!("SKIPPED stop_from_the_page_in_headless_chromium: no chromium binary on PATH (apt-get install chromium)");
        return;
    };
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let epochs = 2000;
    let mut trainer = train(&dir, epochs, 96, &["--monitor"])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr: ChildStderr = trainer.stderr.take().unwrap();
    let mut trainer = Guard(trainer);
    let (line, train_log) = watch_lines(stderr, "monitor: http://", Duration::from_secs(120));
    let url = line[line.find("http://").unwrap()..].trim().to_string();

    let profile = tmp.path().join("chrome-profile");
    let mut browser = Command::new(&chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            "--window-size=1400,1250",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let bstderr = browser.stderr.take().unwrap();
    let _browser = Guard(browser);
    let (line, _blog) = watch_lines(bstderr, "DevTools listening on ws://", Duration::from_secs(60));
    let port: u16 = line
        .split("ws://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no DevTools port in {line}"));
    let mut cdp = page_session(port, url.split('?').next().unwrap());
    cdp.call("Page.enable", serde_json::json!({}));

    // The second epoch appears on the page (charts and all), without a reload.
    cdp.wait_for(
        "Number(document.body.dataset.epochs || 0) >= 2 && document.querySelector('#chart-loss svg') !== null \
         && document.querySelector('#chart-probes svg') !== null && document.body.dataset.alive === '1'",
        Duration::from_secs(180),
    );
    let seen_epochs = cdp.eval("Number(document.body.dataset.epochs)").as_u64().unwrap();
    cdp.screenshot("/tmp/monitor-1-training.png");

    // An absurd learning rate typed into the page is refused with the message.
    cdp.eval("document.getElementById('lr').value = '-1'; document.getElementById('setlr').click(); true");
    cdp.wait_for(
        "document.getElementById('message').textContent.includes('(0, 10]')",
        Duration::from_secs(20),
    );

    // A learning rate and the penalty on a rectangle, from the page; both applied and recorded.
    cdp.eval("document.getElementById('lr').value = '0.01'; document.getElementById('setlr').click(); true");
    cdp.wait_for(
        "document.getElementById('message').textContent.startsWith('accepted')",
        Duration::from_secs(20),
    );
    cdp.eval(
        "document.getElementById('pen-on').checked = true; document.getElementById('pen-weight').value = '0.5'; \
         document.getElementById('pen-region').value = 'rect'; \
         for (const [k, v] of [['x0', 2], ['y0', 3], ['x1', 12], ['y1', 9]]) document.getElementById(k).value = v; \
         document.getElementById('message').textContent = ''; document.getElementById('pen-apply').click(); true",
    );
    cdp.wait_for(
        "document.getElementById('message').textContent.startsWith('accepted')",
        Duration::from_secs(20),
    );
    cdp.wait_for(
        "document.querySelectorAll('#ivs tr').length === 2",
        Duration::from_secs(60),
    );
    let applied_by = cdp.eval("Number(document.body.dataset.epochs)").as_u64().unwrap();
    // A whole epoch with both, then the stop.
    cdp.wait_for(
        &format!("Number(document.body.dataset.epochs) >= {}", applied_by + 2),
        Duration::from_secs(120),
    );
    cdp.screenshot("/tmp/monitor-2-steered.png");
    cdp.eval(
        "document.getElementById('message').textContent = ''; document.getElementById('stop').click(); true",
    );
    cdp.wait_for(
        "document.getElementById('message').textContent.startsWith('accepted')",
        Duration::from_secs(20),
    );
    let clicked = Instant::now();
    let status = loop {
        if let Some(s) = trainer.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            clicked.elapsed() < Duration::from_secs(120),
            "training did not stop after the click:\n{}",
            drain(&train_log)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = drain(&train_log);
    assert!(status.success(), "exit {status:?}:\n{log}");
    assert!(log.contains("stopped from the monitor"), "{log}");
    // The page notices the end (the server went with the training process).
    cdp.wait_for(
        "document.getElementById('conn').textContent.includes('unreachable') || document.body.dataset.alive === '0'",
        Duration::from_secs(30),
    );
    cdp.screenshot("/tmp/monitor-3-stopped.png");

    let h = json(&dir.join("history.json"));
    let done = h["epochs"].as_array().unwrap().len();
    assert!(done >= seen_epochs as usize && done < epochs, "{done} epochs");
    assert_eq!(h["stopped_early"], true);
    let ivs = h["interventions"].as_array().unwrap();
    let kinds: Vec<&str> = ivs
        .iter()
        .map(|i| i["request"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["set_learning_rate", "penalty", "stop"], "{ivs:?}");
    assert_eq!(ivs[0]["request"]["lr"], 0.01);
    assert_eq!(
        ivs[1]["request"],
        serde_json::json!({"type": "penalty", "enabled": true, "weight": 0.5,
                           "region": {"kind": "rect", "x0": 2, "y0": 3, "x1": 12, "y1": 9}})
    );
    assert_eq!(ivs[2]["epoch"].as_u64().unwrap() as usize, done);
    assert!(ivs.iter().all(|i| i["time"].as_f64().unwrap() > 1.7e9));
    // The epochs after them trained with the new rate and the penalty.
    let last = &h["epochs"][done - 1];
    assert_eq!(last["lr"], 0.01);
    assert_eq!(last["penalty"]["weight"], 0.5);
    assert!(last["penalty"]["mean"].as_f64().unwrap() >= 0.0);
    assert_eq!(json(&dir.join("run.json"))["status"], "stopped_early");
    let p = json(&dir.join("progress.json"));
    assert_eq!(p["running"], false);

    // The checkpoint loads into the model it was saved from, and training resumes from it.
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _model = cnn_explain::models::ZooConfig {
        arch: cnn_explain::models::Arch::SmallCnn,
        num_classes: h["class_names"].as_array().unwrap().len() as i64,
        init: cnn_explain::models::Init::Zeros,
        normalization: None,
    }
    .build(&vs.root())
    .unwrap();
    for f in ["last.safetensors", "best.safetensors"] {
        cnn_explain::models::weights::load(&vs, dir.join("checkpoints").join(f)).unwrap();
    }
    let out = bin()
        .args([
            "train",
            "--resume",
            dir.to_str().unwrap(),
            "--epochs",
            &(done + 1).to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let h2 = json(&dir.join("history.json"));
    assert_eq!(h2["epochs"].as_array().unwrap().len(), done + 1);
    assert_eq!(h2["interventions"].as_array().unwrap().len(), 3);
    // The resumed epoch replayed the learning rate and the penalty.
    assert_eq!(h2["epochs"][done]["lr"], 0.01);
    assert_eq!(h2["epochs"][done]["penalty"]["weight"], 0.5);
    println!(
        "monitor end to end: {seen_epochs} epochs seen on the page, stopped after {done}; {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
