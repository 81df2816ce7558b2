//! The official Python `kubernetes` client (from PyPI, pinned in scripts/test.sh) against k8rs, unchanged. The
//! checks live in `support/python_client_e2e.py`; this starts a server and runs the script against it.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::Server;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/python_client_e2e.py");

/// Every check the script runs; each must report `ok`, so none can go missing silently. (Parts of checks that meet a
/// known k8rs gap print `skip: <check>/<part>: <why>` and do not fail the test; they pass by themselves once fixed.)
const CHECKS: &[&str] = &[
    "version",
    "namespace",
    "configmap",
    "secret",
    "deployment",
    "service",
    "selectors_and_pages",
    "events",
    "service_account",
    "custom_objects",
    "watch_live",
    "watch_replay",
    "create_from_yaml",
    "dynamic_client",
    "cleanup",
];

/// The interpreter that has the client: `$K8RS_PYTHON` (set by scripts/test.sh), else the virtualenv that
/// scripts/test.sh makes in the workspace's `target/pyenv`.
fn python() -> PathBuf {
    match std::env::var_os("K8RS_PYTHON") {
        Some(path) => path.into(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin/python3"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails (never skips) when the client is missing: a pass without it would prove nothing.
fn require_client(python: &Path) {
    let probe = Command::new(python).args(["-c", "import kubernetes; print(kubernetes.__version__)"]).output();
    let why = match probe {
        Ok(out) if out.status.success() => {
            eprintln!("python kubernetes client {}", text(&out.stdout).trim());
            return;
        }
        Ok(out) => text(&out.stderr),
        Err(e) => e.to_string(),
    };
    panic!(
        "the Python kubernetes client is not installed for {}: run scripts/test.sh, which installs it into \
         target/pyenv (or set K8RS_PYTHON to an interpreter that has it): {}",
        python.display(),
        why.trim()
    );
}

#[test]
fn the_official_python_client_works_unchanged() {
    let python = python();
    require_client(&python);
    let server = Server::start(env!("CARGO_BIN_EXE_k8rs").as_ref(), &[]);
    // `timeout` bounds a hung request or watch. HOME and TMPDIR keep the client away from the user's ~/.kube and
    // put its discovery cache (a file per server in the temporary directory) in the server's directory.
    let out = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .arg(SCRIPT)
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.data_dir())
        .env("TMPDIR", server.data_dir())
        .output()
        .expect("run python");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "the script failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        server.log()
    );
    for check in CHECKS {
        assert!(stdout.lines().any(|l| l == format!("ok: {check}")), "check {check} did not pass:\n{stdout}");
    }
}
