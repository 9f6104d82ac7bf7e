//! The crate side's handle on the Python peer server (`scripts/bench/peers.py --serve`): one
//! persistent process, JSON lines on its stdin, one answer per line on its stdout (its logging goes
//! to stderr, which it shares with the bench). Included by `benches/peers.rs` and by
//! `tests/peers_export.rs` (`#[path]`), which checks the failure paths with a stand-in server.
//!
//! Every answer is `{"ok": true, ...}` or `{"ok": false, "error": "..."}`; the first line, sent
//! without a command, says hello (versions, threads, the peers of each method). A server that fails
//! a command, dies, closes its stdout or does not answer within the timeout gives an error that says
//! so and which command it was running, never a hang: the lines are read by a thread and waited
//! for with a timeout, and a server that does not answer in time is killed.

// Each includer uses a different part.
#![allow(dead_code)]

use cnn_explain::prelude::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running peer server.
pub struct PeerServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    timeout: Duration,
    /// The program, for messages.
    what: PathBuf,
    /// The first line the server sent (versions, threads, peers).
    pub hello: Value,
}

impl PeerServer {
    /// Starts `program args...` with `env` added to the environment and waits (up to `timeout`)
    /// for its hello line.
    pub fn spawn(program: &str, args: &[String], env: &[(&str, &str)], timeout: Duration) -> Result<Self> {
        let what = PathBuf::from(program);
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::io(&what, e))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::data(&what, "the peer server has no stdout"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let failed = line.is_err();
                if tx.send(line).is_err() || failed {
                    break;
                }
            }
            // Dropping `tx` tells the receiver the server closed its stdout.
        });
        let mut server = PeerServer {
            child,
            stdin,
            lines,
            timeout,
            what,
            hello: Value::Null,
        };
        server.hello = server.answer("starting (hello)")?;
        Ok(server)
    }

    /// Sends one command and returns its answer (`ok: true`), or the error the server reported.
    pub fn call(&mut self, cmd: Value) -> Result<Value> {
        let text = cmd.to_string();
        let label = cmd
            .get("cmd")
            .and_then(Value::as_str)
            .map_or_else(|| text.clone(), |c| format!("`{c}` ({text})"));
        let sent = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{text}").and_then(|_| stdin.flush()),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "stdin already closed",
            )),
        };
        if let Err(e) = sent {
            return Err(self.died(&label, &format!("could not send the command ({e})")));
        }
        self.answer(&label)
    }

    /// One timed call: `run` `method` of `peer` once, its seconds.
    pub fn run(&mut self, method: &str, peer: &str, rep: usize) -> Result<f64> {
        self.run_expecting(method, peer, rep, 0.0)
    }

    /// [`PeerServer::run`] of a call expected to take about `expected` seconds (from its
    /// warm-up): the server is given 3 times that, if it is more than the timeout, before it is
    /// taken for hung (a call of Score-CAM on ResNet-50 at batch 16 takes over 30 minutes).
    pub fn run_expecting(&mut self, method: &str, peer: &str, rep: usize, expected: f64) -> Result<f64> {
        let timeout = self.timeout;
        if expected.is_finite() && expected > 0.0 {
            self.timeout = timeout.max(Duration::from_secs_f64(3.0 * expected));
        }
        let a = self.call(serde_json::json!({"cmd": "run", "method": method, "peer": peer, "rep": rep}));
        self.timeout = timeout;
        let a = a?;
        a.get("seconds")
            .and_then(Value::as_f64)
            .ok_or_else(|| Error::data(&self.what, format!("`run` answered without `seconds`: {a}")))
    }

    /// One untimed call of a peer's method on the case's first image, made on an object of its own
    /// (the warm-up of a row a stopped run had begun). Answers its seconds.
    pub fn warm_first_image(&mut self, method: &str, peer: &str, rep: usize) -> Result<f64> {
        let a = self.call(serde_json::json!({
            "cmd": "warm_first_image", "method": method, "peer": peer, "rep": rep
        }))?;
        a.get("seconds").and_then(Value::as_f64).ok_or_else(|| {
            Error::data(
                &self.what,
                format!("`warm_first_image` answered without `seconds`: {a}"),
            )
        })
    }

    /// Ends a peer's row: the server keeps its last map and releases the object. Answers how the
    /// peer was called where that differs from the other rows (`""` otherwise), for the table.
    pub fn finish(&mut self, method: &str, peer: &str) -> Result<String> {
        let a = self.call(serde_json::json!({"cmd": "finish", "method": method, "peer": peer}))?;
        Ok(a.get("as_run")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// Asks the server to quit and waits for it to exit.
    pub fn quit(mut self) -> Result<()> {
        self.call(serde_json::json!({"cmd": "quit"}))?;
        self.stdin = None;
        self.wait_exit(Duration::from_secs(10));
        Ok(())
    }

    /// Waits for the next answer line.
    fn answer(&mut self, label: &str) -> Result<Value> {
        let line = match self.lines.recv_timeout(self.timeout) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(self.died(label, &format!("reading its answer failed ({e})"))),
            Err(RecvTimeoutError::Disconnected) => return Err(self.died(label, "it closed its output")),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(Error::data(
                    &self.what,
                    format!(
                        "the peer server did not answer {label} within {} s, so it was killed \
                         (raise PEERS_TIMEOUT if one call can take longer)",
                        self.timeout.as_secs_f64()
                    ),
                ));
            }
        };
        let value: Value = serde_json::from_str(&line).map_err(|e| {
            Error::data(
                &self.what,
                format!("the peer server answered {label} with a line that is not JSON ({e}): {line:?}"),
            )
        })?;
        if value.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(value)
        } else {
            let why = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            Err(Error::data(
                &self.what,
                format!("the peer server failed {label}: {why} (its traceback is above, on stderr)"),
            ))
        }
    }

    /// The error for a server that went away while running `label`.
    fn died(&mut self, label: &str, how: &str) -> Error {
        self.stdin = None;
        let status = match self.wait_exit(Duration::from_secs(5)) {
            Some(s) => format!("it exited with {s}"),
            None => "it was still running and was killed".to_string(),
        };
        Error::data(
            &self.what,
            format!("the peer server stopped while running {label}: {how}; {status} (its error output is above, on stderr)"),
        )
    }

    /// Waits up to `limit` for the server to exit, then kills it; its exit status if it exited.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return None;
                }
            }
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        // Closing stdin makes the server leave its loop; kill it if it does not.
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            self.wait_exit(Duration::from_secs(5));
        }
    }
}
