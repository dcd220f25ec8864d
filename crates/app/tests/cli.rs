//! The compiled `mentorfy` binary end to end: each test runs it as a subprocess in a temp directory of its own,
//! with a cleared environment, so a developer's configuration cannot change the results. Servers listen on a
//! free port, are polled for readiness (a bounded number of tries, never a timing assertion), and are killed
//! when a test fails.

// The workspace denies these in production code; `allow-*-in-tests` only covers `#[test]` functions, and the
// helpers below are test code too: a failed expectation here must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_mentorfy");

/// Pause between polls of a child process or of `/healthz`.
const POLL: Duration = Duration::from_millis(25);
/// Upper bound on polls while waiting for a command to finish (a guard against hanging, not a timing check).
const MAX_EXIT_POLLS: u32 = 4_800;
/// Upper bound on `/healthz` polls while a server starts.
const MAX_READY_POLLS: u32 = 1_200;

// ---------------------------------------------------------------------------------------------------------
// Sandboxes and commands
// ---------------------------------------------------------------------------------------------------------

/// A temp directory with `work/` (the child's working directory, empty at first) and `out/` (captured output).
struct Sandbox {
    root: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join("work")).expect("work dir");
        std::fs::create_dir(root.path().join("out")).expect("out dir");
        Self { root }
    }

    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    fn out(&self, name: &str) -> PathBuf {
        self.root.path().join("out").join(name)
    }

    /// `mentorfy <args>` in `work/` with only PATH, HOME and TMPDIR inherited/set, plus `vars`.
    fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.work())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.path())
            .env("TMPDIR", self.root.path())
            .stdin(Stdio::null());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a command to completion, stdout and stderr captured through files (no pipe can fill up).
    fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Finished {
        self.run_with_stdin(args, vars, None)
    }

    /// [`Sandbox::run`] with `stdin` (when given) fed from a file, as a shell pipe would.
    fn run_with_stdin(&self, args: &[&str], vars: &[(&str, &str)], stdin: Option<&str>) -> Finished {
        let (out_path, err_path) = (self.out("run.stdout"), self.out("run.stderr"));
        let mut cmd = self.command(args, vars);
        if let Some(input) = stdin {
            let in_path = self.out("run.stdin");
            std::fs::write(&in_path, input).expect("stdin file");
            cmd.stdin(File::open(&in_path).expect("stdin file"));
        }
        let child = cmd
            .stdout(File::create(&out_path).expect("stdout file"))
            .stderr(File::create(&err_path).expect("stderr file"))
            .spawn()
            .expect("spawn mentorfy");
        let mut guard = ChildGuard(child);
        let status =
            guard.wait_bounded().unwrap_or_else(|| panic!("`mentorfy {}` did not exit; killed it", args.join(" ")));
        Finished { status, stdout: read(&out_path), stderr: read(&err_path) }
    }
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn describe(&self) -> String {
        format!("status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Kills the child when dropped, unless it has already exited.
struct ChildGuard(Child);

impl ChildGuard {
    /// Waits for exit with a bounded number of polls; `None` (after killing the child) if it never exits.
    fn wait_bounded(&mut self) -> Option<ExitStatus> {
        for _ in 0..MAX_EXIT_POLLS {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            sleep(POLL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// A running server
// ---------------------------------------------------------------------------------------------------------

struct Server {
    child: ChildGuard,
    port: u16,
    stderr_path: PathBuf,
}

impl Server {
    /// Starts `mentorfy serve` on a free port and waits until `/healthz` answers 200. Another process may grab
    /// the port between our probe and the server's bind; that case is retried with a new port.
    fn start(sandbox: &Sandbox, vars: &[(&str, &str)]) -> Server {
        let mut last = String::new();
        for attempt in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut all: Vec<(&str, &str)> = vars.to_vec();
            all.push(("MENTORFY_ADDR", &addr));
            let stderr_path = sandbox.out(&format!("serve-{attempt}.stderr"));
            let child = sandbox
                .command(&["serve"], &all)
                .stdout(File::create(sandbox.out(&format!("serve-{attempt}.stdout"))).expect("stdout file"))
                .stderr(File::create(&stderr_path).expect("stderr file"))
                .spawn()
                .expect("spawn mentorfy serve");
            let mut server = Server { child: ChildGuard(child), port, stderr_path };
            for _ in 0..MAX_READY_POLLS {
                if let Some(status) = server.child.0.try_wait().expect("try_wait") {
                    last = format!("exited early with {status:?}:\n{}", read(&server.stderr_path));
                    break;
                }
                if server.request("GET", "/healthz", None).is_ok_and(|r| r.status == 200) {
                    return server;
                }
                sleep(POLL);
            }
            if !last.contains("cannot listen") {
                if last.is_empty() {
                    last = format!("never answered /healthz:\n{}", read(&server.stderr_path));
                }
                break;
            }
        }
        panic!("mentorfy serve did not become ready: {last}");
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Reply> {
        http(self.port, method, path, body)
    }

    /// A request that must succeed at the transport level.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.request(method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Sends SIGTERM and waits (bounded) for exit; returns the exit status and everything written to stderr.
    fn terminate(&mut self) -> (ExitStatus, String) {
        let pid = self.child.0.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(kill.success(), "kill -TERM {pid} failed");
        let status =
            self.child.wait_bounded().unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", read(&self.stderr_path)));
        (status, read(&self.stderr_path))
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

// ---------------------------------------------------------------------------------------------------------
// A tiny blocking HTTP/1.1 client (one request per connection)
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts the status (showing the reply when it differs) and returns the JSON body.
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected reply: {self:?}");
        self.json()
    }
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Reply> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\naccept: application/json\r\n"
    );
    if !body.is_empty() {
        request.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_reply(&raw)
        .ok_or_else(|| std::io::Error::other(format!("malformed reply: {:?}", String::from_utf8_lossy(&raw))))
}

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    }
    Some(Reply { status, headers, body: String::from_utf8(body).ok()? })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

#[test]
fn help_is_available_on_every_command() {
    let sandbox = Sandbox::new();
    for command in
        [&[][..], &["serve"], &["migrate"], &["config"], &["worker"], &["jobs"], &["bench"], &["bench", "sessions"]]
    {
        let mut args = command.to_vec();
        args.push("--help");
        let run = sandbox.run(&args, &[]);
        assert_eq!(run.status.code(), Some(0), "`mentorfy {}`\n{}", args.join(" "), run.describe());
        let usage = format!("Usage: {}", ["mentorfy"].iter().chain(command).copied().collect::<Vec<_>>().join(" "));
        assert!(
            run.stdout.contains(&usage),
            "`mentorfy {}` should print `{usage}`\n{}",
            args.join(" "),
            run.describe()
        );
    }
    // Asking for help must not have started anything or created a database.
    assert!(!sandbox.work().join("data").exists(), "--help created ./data");
}

#[test]
fn a_bad_configuration_value_stops_start_up_with_one_line_naming_the_variable() {
    let assert_one_line = |sandbox: &Sandbox, vars: &[(&str, &str)], named: &str| {
        // No command: the default, `serve`. It must stop before binding or touching a database.
        let run = sandbox.run(&[], vars);
        assert_eq!(run.status.code(), Some(2), "{vars:?}\n{}", run.describe());
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr must be exactly one line for {vars:?}\n{}", run.describe());
        let line = lines[0];
        assert!(line.starts_with("mentorfy: configuration error: "), "{vars:?}: {line:?}");
        assert!(line.contains(named), "{vars:?}: {line:?} does not name {named}");
        assert!(!sandbox.work().join("data").exists(), "{vars:?}: a database was created despite the bad value");
    };

    for (var, value) in
        [("MENTORFY_ADDR", "nonsense"), ("DATABASE_URL", "mysql://x"), ("MENTORFY_ABANDON_AFTER", "soon")]
    {
        let sandbox = Sandbox::new();
        assert_one_line(&sandbox, &[(var, value)], var);
    }

    let sandbox = Sandbox::new();
    std::fs::write(sandbox.work().join("mentorfy.toml"), "adress = \"127.0.0.1:9000\"\n").expect("write mentorfy.toml");
    assert_one_line(&sandbox, &[], "adress");
}

#[test]
fn serve_starts_with_no_configuration_and_creates_the_sqlite_database() {
    let sandbox = Sandbox::new();
    let mut server = Server::start(&sandbox, &[]);

    assert_eq!(server.call("GET", "/healthz", None).expect(200)["status"], "ok");
    assert_eq!(server.call("GET", "/readyz", None).expect(200)["status"], "ready");
    let created =
        server.call("POST", "/api/session", Some(&json!({"orgId": "rafael-tatts", "name": "Ana"}))).expect(201);
    let id = created["sessionId"].as_str().unwrap_or_else(|| panic!("no sessionId in {created}")).to_owned();
    let got = server.call("GET", &format!("/api/session/{id}"), None).expect(200);
    assert_eq!(got["sessionId"], id.as_str());
    assert_eq!(got["name"], "Ana");

    let (status, stderr) = server.terminate();
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status:?}\n{stderr}");
    assert!(stderr.contains("shutdown complete"), "stderr:\n{stderr}");
    let db = sandbox.work().join("data").join("mentorfy.db");
    assert!(db.is_file(), "{} does not exist", db.display());
}

#[test]
fn json_logs_carry_request_ids_and_no_personal_data() {
    let sandbox = Sandbox::new();
    let mut server = Server::start(&sandbox, &[("MENTORFY_LOG_FORMAT", "json")]);

    let contact = json!({"orgId": "rafael-tatts", "email": "ana.secret@example.com", "phone": "+15551234567", "name": "Ana Secretname"});
    let created = server.call("POST", "/api/session", Some(&contact));
    let id = created.expect(201)["sessionId"].as_str().expect("sessionId").to_owned();
    let created_request_id = created.header("x-request-id").expect("x-request-id on the reply").to_owned();
    let patch = json!({
        "email": "ana.secret@example.com",
        "phone": "+15551234567",
        "name": "Ana Secretname",
        "context": {"note": "private answer"},
    });
    let patched = server.call("PATCH", &format!("/api/session/{id}"), Some(&patch));
    assert_eq!(patched.expect(200)["success"], true);
    let patched_request_id = patched.header("x-request-id").expect("x-request-id on the reply").to_owned();
    assert_ne!(created_request_id, patched_request_id, "each request gets its own id");

    let (status, stderr) = server.terminate();
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status:?}\n{stderr}");

    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(Value::is_object), "every line is a JSON object:\n{stderr}");
    assert!(lines.iter().any(|l| l["message"] == "shutdown complete"), "no shutdown line:\n{stderr}");
    // The request span is rendered as "span": {"name": "request", "method", "path", "request_id"}.
    for request_id in [&created_request_id, &patched_request_id] {
        assert!(
            lines.iter().any(|l| l["span"]["name"] == "request" && l["span"]["request_id"] == request_id.as_str()),
            "no log line carries request_id {request_id} in its span:\n{stderr}"
        );
    }
    assert!(
        lines.iter().any(|l| l["span"]["path"] == format!("/api/session/{id}") && l["span"]["method"] == "PATCH"),
        "the PATCH is not logged with its path:\n{stderr}"
    );
    for personal in ["ana.secret@example.com", "ana.secret", "5551234567", "Secretname", "private answer"] {
        assert!(!stderr.contains(personal), "the logs contain personal data {personal:?}:\n{stderr}");
    }
}

#[test]
fn jobs_shows_counts_and_dead_jobs_on_a_fresh_sqlite_database() {
    let sandbox = Sandbox::new();
    let db = sandbox.out("jobs.db");
    let url = format!("sqlite://{}", db.display());
    let vars = [("DATABASE_URL", url.as_str()), ("MENTORFY_LOG", "warn")];
    let fresh = sandbox.run(&["jobs"], &vars);
    assert_eq!(fresh.status.code(), Some(0), "{}", fresh.describe());
    assert_eq!(fresh.stdout.lines().next(), Some("no jobs"), "{}", fresh.describe());
    assert!(fresh.stdout.contains("analytics rollups: not computed yet"), "{}", fresh.describe());

    // One pending job and one that died with an error.
    let dead_id = runtime().block_on(async {
        let store = mentorfy_store::Store::connect(&url, 2).await.expect("connect");
        let pending = mentorfy_store::NewJob::new("email", "email.send", json!({"to": "ana@example.com"}));
        store.enqueue(&pending).await.expect("enqueue").expect("id");
        let doomed = mentorfy_store::NewJob::new("memory", "memory.write", json!({}));
        let id = store.enqueue(&doomed).await.expect("enqueue").expect("id");
        let claimed = store.claim(&["memory".to_owned()], "w", Duration::from_secs(30), 1).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        assert!(store.fail(id, "w", "provider said 400:\nbad input", None).await.expect("fail"));
        store.refresh_rollups(mentorfy_store::now()).await.expect("refresh");
        store.close().await;
        id
    });
    let table = sandbox.run(&["jobs"], &vars);
    assert_eq!(table.status.code(), Some(0), "{}", table.describe());
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("QUEUE") && lines[0].contains("STATE") && lines[0].contains("COUNT"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("email") && l.contains("pending") && l.ends_with(" 1")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("memory") && l.contains("dead") && l.ends_with(" 1")), "{lines:?}");
    let dead_line = lines.iter().find(|l| l.starts_with(&dead_id.to_string())).expect("dead job listed");
    assert!(dead_line.contains("memory.write") && dead_line.contains("attempts=1"), "{dead_line}");
    assert!(dead_line.contains("provider said 400: bad input"), "the error on one line: {dead_line}");
    assert!(!table.stdout.contains("ana@example.com"), "payloads are never printed");
    assert!(table.stdout.contains("analytics rollups: hours before "), "{}", table.describe());

    let json = sandbox.run(&["jobs", "--json", "--dead", "5"], &vars);
    assert_eq!(json.status.code(), Some(0), "{}", json.describe());
    let v: Value = serde_json::from_str(json.stdout.trim()).expect("one JSON object");
    assert_eq!(v["counts"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["dead"][0]["id"], dead_id.to_string());
    assert_eq!(v["dead"][0]["kind"], "memory.write");
    assert_eq!(v["dead"][0]["attempts"], 1);
    assert_eq!(v["rollups"]["stale_hours"], 0, "{v}");
    assert!(v["rollups"]["watermark"].as_str().is_some_and(|w| w.len() == 13), "{v}");
}

#[test]
fn migrate_applies_migrations_once() {
    let sandbox = Sandbox::new();
    let db = sandbox.out("m.db");
    let url = format!("sqlite://{}", db.display());
    assert_migrates_once(&sandbox, &url);
    assert!(db.is_file(), "{} was not created", db.display());
    assert!(!sandbox.work().join("data").exists(), "DATABASE_URL was ignored: ./data was created");

    match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(admin) => {
            let schema = ScratchSchema::create(&admin);
            assert_migrates_once(&sandbox, &schema.url);
        }
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED migrate_applies_migrations_once (PostgreSQL): TEST_DATABASE_URL not set"
            );
        }
    }
}

fn assert_migrates_once(sandbox: &Sandbox, url: &str) {
    let vars = [("DATABASE_URL", url), ("MENTORFY_LOG", "warn")];
    let first = sandbox.run(&["migrate"], &vars);
    assert_eq!(first.status.code(), Some(0), "first migrate\n{}", first.describe());
    let applied: Vec<&str> = first.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!applied.is_empty(), "first migrate applied nothing\n{}", first.describe());
    assert!(
        applied.iter().all(|l| l.starts_with("applied ") && l.len() > "applied ".len()),
        "every line names an applied migration\n{}",
        first.describe()
    );
    let mut unique = applied.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), applied.len(), "a migration was reported twice\n{}", first.describe());

    let second = sandbox.run(&["migrate"], &vars);
    assert_eq!(second.status.code(), Some(0), "second migrate\n{}", second.describe());
    assert_eq!(second.stdout.trim(), "database is up to date", "second migrate\n{}", second.describe());
}

/// A fresh PostgreSQL schema in `TEST_DATABASE_URL`, dropped when this is dropped (also when the test fails).
struct ScratchSchema {
    admin: String,
    schema: String,
    url: String,
}

impl ScratchSchema {
    fn create(admin: &str) -> Self {
        let (url, schema) = runtime()
            .block_on(mentorfy_store::create_scratch_schema(admin, "cli"))
            .unwrap_or_else(|e| panic!("create a scratch schema in TEST_DATABASE_URL: {e}"));
        Self { admin: admin.to_owned(), schema, url }
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        if let Err(e) = runtime().block_on(mentorfy_store::drop_scratch_schema(&self.admin, &self.schema)) {
            let _ = writeln!(std::io::stderr(), "could not drop scratch schema {}: {e}", self.schema);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

#[test]
fn config_prints_effective_values_and_redacts_secrets() {
    let sandbox = Sandbox::new();
    let vars =
        [("ANTHROPIC_API_KEY", "sk-ant-verysecret"), ("DATABASE_URL", "postgres://app:hunter2@db.example:5432/app")];

    let text = sandbox.run(&["config"], &vars);
    assert_eq!(text.status.code(), Some(0), "{}", text.describe());
    for expected in ["MENTORFY_ADDR", "127.0.0.1:8080", "[redacted]", "postgres://app:[redacted]@db.example:5432/app"] {
        assert!(text.stdout.contains(expected), "`config` should show {expected:?}\n{}", text.describe());
    }
    let key_line = text.stdout.lines().find(|l| l.starts_with("ANTHROPIC_API_KEY")).unwrap_or_default();
    assert!(key_line.contains("[redacted]") && key_line.contains("env"), "ANTHROPIC_API_KEY line: {key_line:?}");

    let json_run = sandbox.run(&["config", "--json"], &vars);
    assert_eq!(json_run.status.code(), Some(0), "{}", json_run.describe());
    let parsed: Value = serde_json::from_str(json_run.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", json_run.describe()));
    assert!(parsed.is_object(), "{parsed}");
    assert_eq!(parsed["ANTHROPIC_API_KEY"], json!({"value": "[redacted]", "source": "env"}), "{parsed}");
    assert_eq!(parsed["DATABASE_URL"]["value"], "postgres://app:[redacted]@db.example:5432/app", "{parsed}");
    assert_eq!(parsed["MENTORFY_ADDR"], json!({"value": "127.0.0.1:8080", "source": "default"}), "{parsed}");

    for run in [&text, &json_run] {
        for secret in ["verysecret", "hunter2"] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{secret:?} was printed\n{}",
                run.describe()
            );
        }
    }
}

#[test]
fn bench_sessions_runs_a_short_load_and_reports_percentiles() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(
        &["bench", "sessions", "--seconds", "1", "--rate", "200", "--sessions", "20", "--json"],
        &[("MENTORFY_LOG", "warn")],
    );
    assert_eq!(run.status.code(), Some(0), "{}", run.describe());
    let last = run
        .stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("no output\n{}", run.describe()));
    let report: Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e})\n{}", run.describe()));
    let results = report["results"].as_array().unwrap_or_else(|| panic!("no results array: {report}"));
    let all = results.iter().find(|r| r["endpoint"] == "all").unwrap_or_else(|| panic!("no `all` row: {report}"));
    let requests = all["requests"].as_u64().unwrap_or_else(|| panic!("requests is not a count: {all}"));
    assert!(requests > 0, "no requests were measured: {all}");
    assert_eq!(all["errors"].as_u64(), Some(0), "{all}");
    let (p50, p99) = (all["p50_ms"].as_f64(), all["p99_ms"].as_f64());
    let (Some(p50), Some(p99)) = (p50, p99) else { panic!("percentiles missing: {all}") };
    assert!(p50 >= 0.0 && p50 <= p99, "p50 {p50} ms should be at most p99 {p99} ms: {all}");
}

#[test]
fn admin_create_reads_the_password_from_a_pipe_and_refuses_short_ones() {
    let sandbox = Sandbox::new();
    let url = format!("sqlite://{}", sandbox.out("admin.db").display());
    let vars = [("DATABASE_URL", url.as_str()), ("MENTORFY_LOG", "warn")];
    let help = sandbox.run(&["admin", "create", "--help"], &vars);
    assert_eq!(help.status.code(), Some(0), "{}", help.describe());
    assert!(help.stdout.contains("--email") && help.stdout.contains("stdin"), "{}", help.describe());

    let short = sandbox.run_with_stdin(&["admin", "create", "--email", "a@example.com"], &vars, Some("short\n"));
    assert_ne!(short.status.code(), Some(0), "{}", short.describe());
    assert!(short.stderr.contains("12"), "{}", short.describe());
    let empty = sandbox.run_with_stdin(&["admin", "create", "--email", "a@example.com"], &vars, Some(""));
    assert_ne!(empty.status.code(), Some(0), "{}", empty.describe());

    let password = "a long enough password";
    let ok = sandbox.run_with_stdin(
        &["admin", "create", "--email", "Ada@Example.com"],
        &vars,
        Some(&format!("{password}\n")),
    );
    assert_eq!(ok.status.code(), Some(0), "{}", ok.describe());
    assert!(ok.stdout.contains("ada@example.com"), "{}", ok.describe());
    assert!(!ok.stdout.contains(password) && !ok.stderr.contains(password), "the password is never printed");
    let again = sandbox.run_with_stdin(
        &["admin", "create", "--email", "ada@example.com"],
        &vars,
        Some("another long password\n"),
    );
    assert_ne!(again.status.code(), Some(0), "{}", again.describe());
    assert!(again.stderr.contains("already exists"), "{}", again.describe());
}

#[test]
fn keys_create_prints_the_key_last_then_list_and_revoke_work() {
    let sandbox = Sandbox::new();
    let url = format!("sqlite://{}", sandbox.out("keys.db").display());
    let vars = [("DATABASE_URL", url.as_str()), ("MENTORFY_LOG", "warn")];
    for sub in ["create", "list", "revoke"] {
        let help = sandbox.run(&["keys", sub, "--help"], &vars);
        assert_eq!(help.status.code(), Some(0), "{}", help.describe());
    }
    let created = sandbox.run(&["keys", "create", "--name", "ingest", "--environment", "staging"], &vars);
    assert_eq!(created.status.code(), Some(0), "{}", created.describe());
    let key = created.stdout.lines().last().expect("a line").trim().to_owned();
    assert!(key.starts_with("sk_sensei_") && key.len() == 68, "{}", created.describe());
    assert!(created.stderr.contains("staging") && !created.stderr.contains(&key), "{}", created.describe());

    let list = sandbox.run(&["keys", "list", "--json"], &vars);
    assert_eq!(list.status.code(), Some(0), "{}", list.describe());
    let v: Value = serde_json::from_str(list.stdout.trim()).expect("one JSON object");
    assert_eq!(v["keys"][0]["name"], "ingest");
    assert!(v["keys"][0]["revokedAt"].is_null());
    assert!(!list.stdout.contains(&key[key.len() - 49..]), "the secret is never listed");
    let id = v["keys"][0]["id"].as_str().expect("id").to_owned();

    let revoked = sandbox.run(&["keys", "revoke", &id], &vars);
    assert_eq!(revoked.status.code(), Some(0), "{}", revoked.describe());
    let list = sandbox.run(&["keys", "list", "--json"], &vars);
    let v: Value = serde_json::from_str(list.stdout.trim()).expect("one JSON object");
    assert!(v["keys"][0]["revokedAt"].is_string(), "{v}");
    let unknown = sandbox.run(&["keys", "revoke", "0190a5b4-0000-7000-8000-000000000000"], &vars);
    assert_ne!(unknown.status.code(), Some(0), "{}", unknown.describe());
    let text = sandbox.run(&["keys", "list"], &vars);
    assert!(text.stdout.contains("revoked") && text.stdout.contains("sk_sensei_"), "{}", text.describe());
}
