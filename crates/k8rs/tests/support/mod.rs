//! Shared by the integration tests: requests to a server through `client.py` (a small HTTPS client), and the
//! output of the kubectl commands they run.
// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;
use testkit::Server;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/client.py");

pub fn server(extra: &[&str]) -> Server {
    Server::start(env!("CARGO_BIN_EXE_k8rs").as_ref(), extra)
}

/// `(status code, body lines)` of one request as the admin (a PATCH body is a merge patch).
pub fn call(server: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<String>) {
    let mut command = Command::new("python3");
    command.args([CLIENT, server.kubeconfig().to_str().unwrap(), method, path]);
    if let Some(body) = body {
        command.arg(body);
        command.arg(if method == "PATCH" { "application/merge-patch+json" } else { "application/json" });
    }
    let out = command.output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(str::to_string);
    let code = lines.next().and_then(|l| l.trim().parse().ok()).expect("status line");
    (code, lines.collect())
}

/// `call` for a request answered with one JSON document.
pub fn call_json(server: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (code, lines) = call(server, method, path, body);
    (code, json(&lines.join("\n")))
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// What a command (kubectl) printed on standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What it printed on standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The output of a command that must succeed.
#[track_caller]
pub fn ok(output: Output) -> String {
    assert!(output.status.success(), "kubectl failed: {}{}", stdout(&output), stderr(&output));
    stdout(&output)
}

/// The error output of a command that must fail.
#[track_caller]
pub fn fails(output: Output) -> String {
    assert!(!output.status.success(), "kubectl succeeded: {}", stdout(&output));
    stderr(&output)
}
