//! `cnn-explain monitor RUN_DIR` (and `train --monitor`): a local web page that shows a training run
//! as it goes and sends steering requests to it.
//!
//! The server only reads the run folder (`run.json`, `history.json`, `progress.json`, which training
//! writes atomically, so a half-written epoch is never shown) and writes requests into
//! `RUN/control/` ([`steering::submit`]); it does not care whether training runs in the same
//! process, another one, or none (a finished run is shown as it ended; a restarted one is picked up
//! at the next poll). One watcher thread polls the files and renders the charts (SVG, by the
//! crate's `viz`); every browser tab gets the latest state over server-sent events.
//!
//! Security: bound to 127.0.0.1 unless `--host` says otherwise; every route needs the random token
//! printed at start (in the URL, or the `x-monitor-token` header); request bodies that do not parse
//! are refused with 400, values outside the run's limits with 400, requests the run's state cannot
//! take (training not running, a probe shown twice) with 409, each with a message.

use crate::common::{self, RunFile};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use cnn_explain::eval::most_unstable;
use cnn_explain::train::steering::{self, Progress, Request, PROBE_KEY};
use cnn_explain::train::History;
use cnn_explain::viz::{escape_html, Colormap, Draw, ImageGrid, LineChart, MatrixChart, Series};
use cnn_explain::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

const PAGE: &str = include_str!("monitor.html");
/// How often the watcher looks at the run folder.
const POLL: Duration = Duration::from_millis(300);
/// Epochs shown in the explanation strip (the most recent ones).
const STRIP_EPOCHS: usize = 8;
/// Rows of the confusion-evolution heatmap (the most unstable tracked images).
const EVOLUTION_ROWS: usize = 30;

#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Run folder written by `cnn-explain train` (it may still be training, or not yet started).
    pub run: PathBuf,
    /// Port to listen on (0: a free port, printed at start).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on. Anything but loopback exposes the page (token-protected) to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
}

/// A running monitor server.
pub struct Server {
    /// The page's address with its token.
    pub url: String,
}

/// A token of 128 random bits, as hex.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !from_os {
        // std seeds its hash keys from the operating system's generator.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .elapsed()
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone)]
struct AppState {
    dir: PathBuf,
    token: Arc<String>,
    progress: watch::Receiver<Arc<String>>,
    history: watch::Receiver<Arc<String>>,
}

/// Binds `host:port` and serves `dir` from a background thread; returns once the socket listens.
pub fn spawn(dir: &Path, host: IpAddr, port: u16) -> Result<Server> {
    let listener = std::net::TcpListener::bind(SocketAddr::new(host, port)).map_err(|e| {
        Error::invalid(
            "port",
            format!("cannot listen on {host}:{port}: {e}; choose another --port (0 picks a free one)"),
        )
    })?;
    listener.set_nonblocking(true).map_err(|e| Error::io(dir, e))?;
    let addr = listener.local_addr().map_err(|e| Error::io(dir, e))?;
    let token = random_token();
    // The first payloads before the first request, so no page or client sees an empty state.
    let (ptx, prx) = watch::channel(Arc::new(progress_payload(dir).to_string()));
    let (htx, hrx) = watch::channel(Arc::new(history_payload(dir).to_string()));
    let watch_dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name("monitor-watch".into())
        .spawn(move || watch_run(&watch_dir, &ptx, &htx))
        .map_err(|e| Error::io(dir, e))?;
    let state = AppState {
        dir: dir.to_path_buf(),
        token: Arc::new(token.clone()),
        progress: prx,
        history: hrx,
    };
    let app = router(state);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io(dir, e))?;
    std::thread::Builder::new()
        .name("monitor-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, app).await {
                            eprintln!("monitor: the web server stopped: {e}");
                        }
                    }
                    Err(e) => eprintln!("monitor: cannot serve: {e}"),
                }
            })
        })
        .map_err(|e| Error::io(dir, e))?;
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port())
    } else {
        addr
    };
    Ok(Server {
        url: format!("http://{shown}/?token={token}"),
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/events", get(events))
        .route("/api/state", get(api_state))
        .route("/api/request", post(api_request))
        .route("/probe/{file}", get(probe_image))
        .with_state(state)
}

pub fn run(a: MonitorArgs) -> Result<ExitCode> {
    RunFile::load(&a.run)?;
    let server = spawn(&a.run, a.host, a.port)?;
    println!("monitor of {}: {}", a.run.display(), server.url);
    println!("(Ctrl-C to stop the monitor; training, if any, goes on)");
    loop {
        std::thread::park();
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

type Reply = (StatusCode, [(header::HeaderName, &'static str); 1], String);

fn reply(code: StatusCode, body: Value) -> Reply {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

fn refuse(code: StatusCode, message: impl Into<String>) -> Reply {
    reply(code, json!({ "ok": false, "message": message.into() }))
}

/// `Err` with a 403 reply unless the query or the `x-monitor-token` header holds the token.
fn authorise(s: &AppState, q: &HashMap<String, String>, headers: &HeaderMap) -> Result<(), Reply> {
    let given = q
        .get("token")
        .map(String::as_str)
        .or_else(|| headers.get("x-monitor-token").and_then(|v| v.to_str().ok()));
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), s.token.as_bytes()) => Ok(()),
        Some(_) => Err(refuse(
            StatusCode::FORBIDDEN,
            "wrong token: use the URL the monitor printed",
        )),
        None => Err(refuse(
            StatusCode::FORBIDDEN,
            "missing token: use the URL the monitor printed (it ends in ?token=...)",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn page(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>, h: HeaderMap) -> Response {
    if let Err(r) = authorise(&s, &q, &h) {
        return r.into_response();
    }
    let title = escape_html(&s.dir.display().to_string());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE.replace("{{RUN}}", &title),
    )
        .into_response()
}

async fn events(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if let Err(r) = authorise(&s, &q, &h) {
        return r.into_response();
    }
    let (rp, rh) = (s.progress.clone(), s.history.clone());
    let stream = futures_util::stream::unfold((rp, rh, 0u8), |(mut rp, mut rh, stage)| async move {
        let ev = |name: &str, data: &str| -> std::result::Result<Event, Infallible> {
            Ok(Event::default().event(name).data(data))
        };
        match stage {
            0 => {
                let v = rh.borrow_and_update().clone();
                Some((ev("history", &v), (rp, rh, 1)))
            }
            1 => {
                let v = rp.borrow_and_update().clone();
                Some((ev("progress", &v), (rp, rh, 2)))
            }
            _ => {
                tokio::select! {
                    r = rh.changed() => {
                        r.ok()?;
                        let v = rh.borrow_and_update().clone();
                        Some((ev("history", &v), (rp, rh, 2)))
                    }
                    r = rp.changed() => {
                        r.ok()?;
                        let v = rp.borrow_and_update().clone();
                        Some((ev("progress", &v), (rp, rh, 2)))
                    }
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}

async fn api_state(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if let Err(r) = authorise(&s, &q, &h) {
        return r.into_response();
    }
    let p: Value = serde_json::from_str(&s.progress.borrow()).unwrap_or(Value::Null);
    let mut hist: Value = serde_json::from_str(&s.history.borrow()).unwrap_or(Value::Null);
    if let Some(o) = hist.as_object_mut() {
        o.remove("charts");
    }
    reply(StatusCode::OK, json!({ "progress": p, "history": hist })).into_response()
}

/// Checks a request against the run's current limits and state, then writes it for training.
fn accept(dir: &Path, body: &[u8]) -> Reply {
    let req: Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("malformed request: {e}; expected JSON such as {{\"type\":\"stop\"}} or {{\"type\":\"set_learning_rate\",\"lr\":0.01}}"),
            )
        }
    };
    let progress = match Progress::load(dir) {
        Ok(p) => p,
        Err(_) => {
            return refuse(
                StatusCode::CONFLICT,
                "this run is not training (no progress.json yet): nothing to steer",
            )
        }
    };
    if let Err(e) = progress.limits.check(&req) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    if !progress.alive() {
        return refuse(
            StatusCode::CONFLICT,
            "training is not running (it finished, stopped or was interrupted): nothing to steer; resume it with `cnn-explain train --resume`",
        );
    }
    if let Err(e) = progress.state.check(&req, &progress.limits) {
        return refuse(StatusCode::CONFLICT, e.to_string());
    }
    match steering::submit(dir, &req) {
        Ok(id) => reply(
            StatusCode::ACCEPTED,
            json!({ "ok": true, "id": id, "message": "accepted: training applies it at the next batch" }),
        ),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn api_request(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorise(&s, &q, &h) {
        return r.into_response();
    }
    accept(&s.dir, &body).into_response()
}

async fn probe_image(
    State(s): State<AppState>,
    UrlPath(file): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if let Err(r) = authorise(&s, &q, &h) {
        return r.into_response();
    }
    let Some(index) = file.strip_suffix(".png").and_then(|i| i.parse::<usize>().ok()) else {
        return refuse(StatusCode::NOT_FOUND, "probe images are /probe/INDEX.png").into_response();
    };
    match std::fs::read(common::probe_path(&s.dir, index)) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "image/png")], bytes).into_response(),
        Err(_) => refuse(StatusCode::NOT_FOUND, format!("no image of probe {index} yet")).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Watching the run folder

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Polls the run folder forever, sending the progress and history payloads when they change.
fn watch_run(dir: &Path, progress: &watch::Sender<Arc<String>>, history: &watch::Sender<Arc<String>>) {
    let hist_path = dir.join(common::HISTORY_FILE);
    let mut last_hist = stamp(&hist_path);
    loop {
        let p = progress_payload(dir).to_string();
        progress.send_if_modified(|old| {
            if **old != p {
                *old = Arc::new(p);
                true
            } else {
                false
            }
        });
        let st = stamp(&hist_path);
        if st != last_hist {
            let payload = history_payload(dir).to_string();
            history.send_if_modified(|old| {
                if **old != payload {
                    *old = Arc::new(payload);
                    true
                } else {
                    false
                }
            });
            last_hist = st;
        }
        if progress.is_closed() && history.is_closed() {
            return;
        }
        std::thread::sleep(POLL);
    }
}

fn progress_payload(dir: &Path) -> Value {
    let status = RunFile::load(dir)
        .map(|r| r.status)
        .unwrap_or_else(|_| "no run yet".into());
    match Progress::load(dir) {
        Ok(p) => {
            let alive = p.alive();
            json!({ "alive": alive, "status": status, "progress": p })
        }
        Err(_) => json!({ "alive": false, "status": status, "progress": Value::Null }),
    }
}

fn svg_or_note(r: Result<String>) -> Value {
    match r {
        Ok(svg) => Value::String(svg),
        Err(e) => Value::String(format!("<p class=\"note\">{}</p>", escape_html(&e.to_string()))),
    }
}

fn history_payload(dir: &Path) -> Value {
    let h = match History::load(dir.join(common::HISTORY_FILE)) {
        Ok(h) => h,
        Err(_) => return json!({ "epochs": 0, "charts": {} }),
    };
    let epochs = h.epochs.len();
    let probes = probe_indices(&h);
    let charts = if epochs == 0 {
        json!({})
    } else {
        json!({
            "loss": svg_or_note(loss_chart(&h)),
            "accuracy": svg_or_note(accuracy_chart(&h)),
            "confusion": svg_or_note(confusion_chart(&h)),
            "evolution": svg_or_note(evolution_chart(&h)),
            "probes": svg_or_note(probe_strip(dir, &h)),
        })
    };
    json!({
        "epochs": epochs,
        "of": h.config.epochs,
        "stopped_early": h.stopped_early,
        "last": h.last(),
        "class_names": h.class_names,
        "probes": probes,
        "interventions": h.interventions,
        "charts": charts,
    })
}

fn nan(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

fn loss_chart(h: &History) -> Result<String> {
    let mut c = LineChart::new(vec![
        Series::new("train", h.train_losses()),
        Series::new("val", h.epochs.iter().map(|e| nan(e.val_loss)).collect()),
        Series::new("test", h.epochs.iter().map(|e| nan(e.test_loss)).collect()),
    ]);
    c.series.push(Series::new(
        "penalty",
        h.epochs
            .iter()
            .map(|e| nan(e.penalty.as_ref().map(|p| p.mean)))
            .collect(),
    ));
    c.series.retain(|s| s.values.iter().any(|v| v.is_finite()));
    c.title = "Loss".into();
    c.y_desc = "cross-entropy".into();
    (c.width, c.height) = (460, 280);
    c.figure().to_svg()
}

fn accuracy_chart(h: &History) -> Result<String> {
    let mut c = LineChart::new(vec![
        Series::new("train", h.epochs.iter().map(|e| e.train_accuracy).collect()),
        Series::new("val", h.epochs.iter().map(|e| nan(e.val_accuracy)).collect()),
        Series::new("test", h.epochs.iter().map(|e| nan(e.test_accuracy)).collect()),
    ]);
    c.series.retain(|s| s.values.iter().any(|v| v.is_finite()));
    c.title = "Accuracy".into();
    c.y_range = Some((0.0, 1.02));
    (c.width, c.height) = (460, 280);
    c.figure().to_svg()
}

fn confusion_chart(h: &History) -> Result<String> {
    let Some(cm) = h.last().and_then(|r| r.confusion.clone()) else {
        return Err(Error::invalid(
            "confusion",
            "no tracked set, so no confusion matrix",
        ));
    };
    let counts: Vec<Vec<f64>> = cm
        .counts
        .iter()
        .map(|r| r.iter().map(|&c| c as f64).collect())
        .collect();
    let mut m = MatrixChart::values(counts).labels(h.class_names.clone(), h.class_names.clone());
    m.title = format!("Confusion matrix, epoch {}", h.epochs.len());
    m.x_desc = "predicted".into();
    m.y_desc = "true class".into();
    m.figure().to_svg()
}

fn evolution_chart(h: &History) -> Result<String> {
    let preds = h.tracked_predictions()?;
    let rows = most_unstable(h, EVOLUTION_ROWS)?;
    let epochs = h.epochs.len();
    let mut cells = Vec::new();
    let mut names = Vec::new();
    for &i in &rows {
        let label = h.tracked_labels[i];
        let mut row = vec![usize::try_from(label).ok()];
        row.extend(preds[i].iter().map(|&p| usize::try_from(p).ok()));
        cells.push(row);
        let class = h.class_names.get(label as usize).cloned().unwrap_or_default();
        names.push(format!("#{i} {class}"));
    }
    let mut cols = vec!["true".to_string()];
    cols.extend((1..=epochs).map(|e| e.to_string()));
    let mut m = MatrixChart::classes(cells, h.class_names.clone()).labels(names, cols);
    m.title = "Least stable test images".into();
    m.x_desc = "epoch".into();
    m.y_desc = "image".into();
    m.cell_height = 12;
    m.cell_width = if epochs > 30 { 10 } else { 22 };
    m.figure().to_svg()
}

/// The probe indices of the last epoch that has maps.
fn probe_indices(h: &History) -> Vec<usize> {
    h.epochs
        .iter()
        .rev()
        .find_map(|e| e.probes.get(PROBE_KEY))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| p["index"].as_u64().map(|i| i as usize))
                .collect()
        })
        .unwrap_or_default()
}

/// One probe image's map in one epoch, as stored by training.
struct ProbeMap {
    predicted: i64,
    prob: f64,
    width: u32,
    height: u32,
    map: Vec<u8>,
}

fn parse_map(v: &Value) -> Option<ProbeMap> {
    use base64::Engine;
    let map = base64::engine::general_purpose::STANDARD
        .decode(v["map"].as_str()?)
        .ok()?;
    let (width, height) = (v["width"].as_u64()? as u32, v["height"].as_u64()? as u32);
    (map.len() == (width * height) as usize).then_some(ProbeMap {
        predicted: v["predicted"].as_i64()?,
        prob: v["true_prob"].as_f64().unwrap_or(f64::NAN),
        width,
        height,
        map,
    })
}

/// The explanation-evolution strip: one row per probe image (the image, then its map over the last
/// epochs blended onto it).
fn probe_strip(dir: &Path, h: &History) -> Result<String> {
    let indices = probe_indices(h);
    if indices.is_empty() {
        return Err(Error::invalid("probes", "no probe image yet (add one below)"));
    }
    let first = h.epochs.len().saturating_sub(STRIP_EPOCHS);
    let shown: Vec<&cnn_explain::train::EpochRecord> = h.epochs[first..].iter().collect();
    let cols = shown.len() + 1;
    let mut images = Vec::new();
    let mut titles = Vec::new();
    let mut labels = Vec::new();
    for &index in &indices {
        let base = image::open(common::probe_path(dir, index))
            .map(|i| i.to_rgb8())
            .map_err(|e| Error::data(common::probe_path(dir, index), e.to_string()))?;
        let class = h
            .epochs
            .iter()
            .rev()
            .find_map(|e| e.probes.get(PROBE_KEY))
            .and_then(|v| v.as_array())
            .and_then(|a| a.iter().find(|p| p["index"].as_u64() == Some(index as u64)))
            .and_then(|p| p["label"].as_i64())
            .and_then(|l| h.class_names.get(l as usize).cloned())
            .unwrap_or_default();
        labels.push(format!("#{index} {class}"));
        titles.push("image".to_string());
        images.push(base.clone());
        for rec in &shown {
            let m = rec
                .probes
                .get(PROBE_KEY)
                .and_then(|v| v.as_array())
                .and_then(|a| a.iter().find(|p| p["index"].as_u64() == Some(index as u64)))
                .and_then(parse_map);
            match m {
                Some(m) if (m.width, m.height) == base.dimensions() => {
                    let colours = image::RgbImage::from_fn(m.width, m.height, |x, y| {
                        let v = m.map[(y * m.width + x) as usize] as f64 / 255.0;
                        image::Rgb(Colormap::Inferno.map(v))
                    });
                    images.push(cnn_explain::viz::blend(&base, &colours, 0.6));
                    let pred = h
                        .class_names
                        .get(m.predicted as usize)
                        .cloned()
                        .unwrap_or_default();
                    titles.push(format!("ep {}\n{pred} {:.0}%", rec.epoch, 100.0 * m.prob));
                }
                _ => {
                    images.push(image::RgbImage::from_pixel(
                        base.width(),
                        base.height(),
                        image::Rgb([235, 235, 235]),
                    ));
                    titles.push(format!("ep {}\n–", rec.epoch));
                }
            }
        }
    }
    let grid = ImageGrid {
        titles,
        row_labels: labels,
        cell: 88,
        title: "Saliency per epoch (true class)".into(),
        ..ImageGrid::new(images, cols)
    };
    grid.figure().to_svg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
