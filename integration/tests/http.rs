//! Profiles pulled from a running service (`THESEUS_HTTP`), as a user pulls
//! them: a child program serves on loopback, and the real clients read it
//! (`go tool pprof`, headless Chromium) beside a plain client for the
//! refusals, concurrent pulls, overlapping windows and a silent client.
//!
//! Needs `go` (golang-go), the callgrind readers and `chromium`, all
//! installed by `.ci/run`.

#[path = "../../tests/common/mod.rs"]
mod common;
mod svg;

use common::child;
use common::readers::{check_with_real_readers, folded_lines, read_pprof_raw};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use svg::svg_frames;

/// The child side.
#[test]
fn child() {
    match child::program().as_deref() {
        None => {}
        Some("serve") => programs::serve::main(),
        Some("busy") => programs::busy::main(),
        Some(other) => panic!("unknown program {other}"),
    }
}

mod programs {
    use std::time::Duration;

    pub async fn before_window() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    pub async fn in_window() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    pub async fn long_lived() {
        std::future::pending::<()>().await;
    }

    pub mod serve {
        /// Some tasks, then "ready", then a task every 20 ms for ever.
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            for _ in 0..5 {
                theseus::spawn(super::before_window()).await.unwrap();
            }
            theseus::spawn(super::long_lived());
            println!("ready");
            loop {
                theseus::spawn(super::in_window()).await.unwrap();
            }
        }
    }

    pub mod busy {
        /// Its only worker and its main thread spin for ever.
        #[theseus::main(worker_threads = 1)]
        pub async fn main() {
            theseus::spawn(super::before_window()).await.unwrap();
            theseus::spawn(async {
                loop {
                    std::hint::spin_loop();
                }
            });
            println!("ready");
            loop {
                std::hint::spin_loop();
            }
        }
    }
}

/// A child program serving its profiles, killed when dropped.
struct Service {
    child: Child,
    address: String,
    dir: common::Scratch,
}

impl Service {
    /// Starts `program` with `THESEUS_HTTP=127.0.0.1:0` and waits until it
    /// says where it serves and that it is ready.
    fn start(program: &str) -> Service {
        let dir = child::scratch_dir(&format!("http-{program}"));
        let out = dir.join("out.callgrind");
        let mut child = child::spawn(
            program,
            &[
                ("THESEUS_HTTP", "127.0.0.1:0"),
                ("THESEUS_OUT", out.to_str().unwrap()),
            ],
        );
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut address = None;
        let mut line = String::new();
        while address.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
            if let Some(rest) = line.split("serving profiles at http://").nth(1) {
                address = Some(rest.split('/').next().unwrap().to_string());
            }
            line.clear();
        }
        let address = address.expect("the program never said where it serves");
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 && !line.contains("ready") {
            line.clear();
        }
        assert!(line.contains("ready"), "the program never got ready");
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Service {
            child,
            address,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn get(&self, path: &str) -> Answer {
        request(&self.address, "GET", path)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection, read to its end (the server closes
/// each connection after one answer).
fn request(address: &str, method: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        body: bytes[head_end + 4..].to_vec(),
    }
}

/// `go tool pprof -raw` of `url`, which must succeed.
fn go_pprof_raw(url: &str, dir: &Path) -> common::readers::PprofRaw {
    let output = Command::new("go")
        .args(["tool", "pprof", "-raw", url])
        .env("PPROF_TMPDIR", dir)
        .output()
        .expect("go tool pprof must be installed: apt-get install golang-go");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "go tool pprof -raw {url}: {stderr}"
    );
    read_pprof_raw(&String::from_utf8(output.stdout).unwrap())
}

/// The tasks (the `Tasks` event) whose stack mentions `name`, in folded
/// stacks of `Tasks`.
fn tasks_named(folded: &str, name: &str) -> u64 {
    folded
        .lines()
        .filter(|line| line.contains(name))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

#[test]
fn go_tool_pprof_reads_a_window_and_finds_its_tasks() {
    let service = Service::start("serve");
    let url = service.url("/debug/pprof/theseus?seconds=2");
    let raw = go_pprof_raw(&url, &service.dir);
    let names: Vec<&String> = raw.samples.iter().flat_map(|s| &s.stack).collect();
    let has = |needle: &str| names.iter().any(|n| n.contains(needle));
    assert!(has("in_window"), "no in_window task in {names:?}");
    assert!(has("long_lived"), "the task running at the end is missing");
    assert!(!has("before_window"), "a task that ended before the window");
    // The server's own work is no task of the program's.
    assert!(
        !has("theseus_profiler::http") && !has("hyper"),
        "the server shows in the profile: {names:?}"
    );
    // The window is two seconds: the one task running all along has two
    // seconds of wall time in it, not the whole run's.
    let wall = raw.index("WallNs");
    let long: u64 = raw
        .samples
        .iter()
        .filter(|s| s.stack.last().is_some_and(|n| n.contains("long_lived")))
        .map(|s| s.values[wall])
        .sum();
    assert!(
        (1_900_000_000..=4_000_000_000).contains(&long),
        "long_lived in a 2 s window: {long} ns"
    );
    // The run so far has the earlier tasks too.
    let so_far = go_pprof_raw(&service.url("/debug/pprof/theseus"), &service.dir);
    assert!(so_far
        .samples
        .iter()
        .any(|s| s.stack.iter().any(|n| n.contains("before_window"))));
}

#[test]
fn every_format_is_read_by_its_reader() {
    let service = Service::start("serve");
    let dir = &service.dir;
    for (format, file) in [
        ("callgrind", "pulled.callgrind"),
        ("folded", "pulled.folded"),
        ("svg", "pulled.svg"),
        ("pprof", "pulled.pb.gz"),
    ] {
        let answer = service.get(&format!("/debug/pprof/theseus?seconds=1&format={format}"));
        assert_eq!(answer.status, 200, "{format}: {}", answer.text());
        let path = dir.join(file);
        std::fs::write(&path, &answer.body).unwrap();
        let found = match format {
            "callgrind" => {
                let totals = check_with_real_readers(&path);
                assert!(totals[6] > 0, "no task in the window: {totals:?}");
                answer.text().contains("in_window")
            }
            "folded" => folded_lines(&path)
                .iter()
                .any(|(stack, _)| stack.contains("in_window")),
            "svg" => svg_frames(&path)
                .iter()
                .any(|(name, _)| name.contains("in_window")),
            _ => common::readers::pprof_raw(&path)
                .samples
                .iter()
                .any(|s| s.stack.iter().any(|n| n.contains("in_window"))),
        };
        assert!(found, "{format}: no in_window task");
    }
    // The default is gzipped pprof, and event= picks the one shown.
    let answer = service.get("/debug/pprof/theseus");
    assert_eq!(&answer.body[..2], &[0x1f, 0x8b], "not gzip");
    let polls = service.get("/debug/pprof/theseus?format=folded&event=Polls");
    let tasks = service.get("/debug/pprof/theseus?format=folded&event=Tasks");
    assert_ne!(polls.text(), tasks.text());
}

#[test]
fn bad_requests_get_a_status_and_a_one_line_reason() {
    let service = Service::start("serve");
    let cases = [
        ("GET", "/debug/pprof/profile", 404, "no such path"),
        ("GET", "/", 404, "/debug/pprof/theseus"),
        ("POST", "/debug/pprof/theseus", 405, "use GET"),
        ("DELETE", "/debug/theseus/", 405, "use GET"),
        (
            "GET",
            "/debug/pprof/theseus?seconds=0",
            400,
            "from 1 to 3600",
        ),
        (
            "GET",
            "/debug/pprof/theseus?seconds=3601",
            400,
            "from 1 to 3600",
        ),
        (
            "GET",
            "/debug/pprof/theseus?seconds=ten",
            400,
            "from 1 to 3600",
        ),
        ("GET", "/debug/pprof/theseus?format=png", 400, "svg"),
        ("GET", "/debug/pprof/theseus?event=Cycles", 400, "WallNs"),
        (
            "GET",
            "/debug/pprof/theseus?secs=1",
            400,
            "unknown parameter",
        ),
        ("GET", "/debug/theseus/?seconds=0", 400, "from 1 to 3600"),
        (
            "GET",
            "/debug/theseus/?format=svg",
            400,
            "unknown parameter",
        ),
    ];
    for (method, path, status, says) in cases {
        let answer = request(&service.address, method, path);
        let text = answer.text();
        assert_eq!(answer.status, status, "{method} {path}: {text}");
        assert!(text.contains(says), "{method} {path}: {text}");
        assert_eq!(text.lines().count(), 1, "{method} {path}: {text}");
    }
    // Not HTTP at all: hyper's parser refuses it before any route.
    let mut stream = TcpStream::connect(&service.address).unwrap();
    stream.write_all(b"HELLO THERE\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // Still serving after all of them.
    assert_eq!(service.get("/debug/pprof/theseus").status, 200);
}

#[test]
fn twenty_pulls_at_once_are_all_answered() {
    let service = Service::start("serve");
    let pulls: Vec<_> = (0..20)
        .map(|_| {
            let address = service.address.clone();
            std::thread::spawn(move || {
                request(
                    &address,
                    "GET",
                    "/debug/pprof/theseus?format=folded&event=Tasks",
                )
            })
        })
        .collect();
    for pull in pulls {
        let answer = pull.join().unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(tasks_named(&answer.text(), "before_window") >= 5);
    }
}

#[test]
fn overlapping_windows_each_get_their_own_and_their_number_is_bounded() {
    let service = Service::start("serve");
    let pull = |seconds: u64| {
        let address = service.address.clone();
        std::thread::spawn(move || {
            let path = format!("/debug/pprof/theseus?seconds={seconds}&format=folded&event=Tasks");
            request(&address, "GET", &path)
        })
    };
    let long = pull(4);
    std::thread::sleep(Duration::from_millis(500));
    let short = pull(1);
    let (long, short) = (long.join().unwrap(), short.join().unwrap());
    assert_eq!((long.status, short.status), (200, 200));
    // 20 ms tasks one after another: about 50 a second in each window.
    let (in_long, in_short) = (
        tasks_named(&long.text(), "in_window"),
        tasks_named(&short.text(), "in_window"),
    );
    assert!(in_short > 0, "no task in the short window");
    assert!(
        in_long > in_short * 2,
        "the 4 s window has {in_long} tasks, the 1 s window inside it {in_short}"
    );

    // Eight windows wait at once; a ninth is refused, not queued.
    let waiting: Vec<_> = (0..8).map(|_| pull(3)).collect();
    std::thread::sleep(Duration::from_secs(1));
    let refused = service.get("/debug/pprof/theseus?seconds=1");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("already waiting"),
        "{}",
        refused.text()
    );
    for answer in waiting {
        assert_eq!(answer.join().unwrap().status, 200);
    }
    assert_eq!(service.get("/debug/pprof/theseus?seconds=1").status, 200);

    // Clients that ask for an hour and leave give their windows back.
    let leavers: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = TcpStream::connect(&service.address).unwrap();
            let request = "GET /debug/pprof/theseus?seconds=3600 HTTP/1.1\r\nHost: x\r\n\r\n";
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(service.get("/debug/pprof/theseus?seconds=1").status, 503);
    drop(leavers);
    std::thread::sleep(Duration::from_secs(1));
    let answer = service.get("/debug/pprof/theseus?seconds=1");
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn a_silent_client_holds_no_one_up_and_is_let_go() {
    let service = Service::start("serve");
    let mut silent = TcpStream::connect(&service.address).unwrap();
    let started = Instant::now();
    let answer = service.get("/debug/pprof/theseus?format=folded");
    assert_eq!(answer.status, 200);
    silent
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut rest = Vec::new();
    // The server closes the connection (with a 408 or without a word).
    let closed = silent.read_to_end(&mut rest);
    assert!(closed.is_ok(), "still open after a minute: {closed:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "closed after only {waited:?}"
    );
}

#[test]
fn a_busy_program_still_answers() {
    let service = Service::start("busy");
    let answer = service.get("/debug/pprof/theseus?format=folded&event=Tasks");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(tasks_named(&answer.text(), "before_window"), 1);
}

#[test]
fn the_page_in_headless_chromium_shows_the_top_stacks_and_a_flame_graph() {
    let service = Service::start("serve");
    let url = service.url("/debug/theseus/?seconds=1&event=Tasks");
    let output = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(&url)
        .env("HOME", &*service.dir)
        .output()
        .expect("chromium must be installed: apt-get install chromium");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let top = dom
        .split("<pre id=\"top-stacks\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no top stacks in {dom}"));
    assert!(
        top.contains("top ") && top.contains("before_window"),
        "{top}"
    );
    let graph = dom
        .split("<div id=\"flame-graph\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no flame graph in {dom}"));
    assert!(graph.trim_start().starts_with("<svg"), "{graph}");
    assert!(graph.contains("in_window"), "{graph}");
    assert!(dom.contains("format=pprof") && dom.contains("format=callgrind"));
}

#[test]
fn a_bad_address_or_a_taken_port_stops_the_program_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for (value, says) in [
        ("localhost:6060", "127.0.0.1:6060"),
        ("6060", "127.0.0.1:6060"),
        (taken.as_str(), "cannot serve profiles there"),
    ] {
        let dir = child::scratch_dir("http-bad");
        let out = dir.join("out.callgrind");
        let output = child::run(
            "serve",
            &[
                ("THESEUS_HTTP", value),
                ("THESEUS_OUT", out.to_str().unwrap()),
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{value}: {stderr}");
        assert!(
            stderr.contains("THESEUS_HTTP") && stderr.contains(says) && stderr.contains(value),
            "{value}: {stderr}"
        );
        assert!(!String::from_utf8_lossy(&output.stdout).contains("ready"));
    }
}
