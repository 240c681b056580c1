//! `#[theseus::main]` as a whole program: each case re-runs this test binary
//! as a child process whose `main` is one of the functions below, and checks
//! its exit status and output.

mod common;

use common::child;
use std::process::Output;

/// The child side: runs the named program when asked to.
fn child_program() -> Option<&'static str> {
    let name = child::program()?;
    Some(match name.as_str() {
        "ok" => {
            programs::ok::main();
            "ok"
        }
        "fixed" => {
            programs::fixed::main();
            "fixed"
        }
        "panics" => {
            programs::panics::main();
            "panics"
        }
        "with_args" => {
            programs::with_args::main();
            "with_args"
        }
        "fails" => {
            if let Err(error) = programs::fails::main() {
                eprintln!("Error: {error}");
                std::process::exit(1);
            }
            "fails"
        }
        other => panic!("unknown program {other}"),
    })
}

mod programs {
    pub mod ok {
        #[theseus::main]
        pub async fn main() {
            let value = theseus::spawn(async { 21 * 2 }).await.unwrap();
            println!("answer {value}");
        }
    }
    pub mod fixed {
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            theseus::spawn(async {}).await.unwrap();
        }
    }
    pub mod panics {
        #[theseus::main(flavor = "current_thread")]
        pub async fn main() {
            theseus::spawn(async { std::future::pending::<()>().await });
            panic!("main gives up");
        }
    }
    /// A plain `fn main` that reads its arguments and calls an async fn
    /// with them, as command-line tools do.
    pub mod with_args {
        pub struct Command {
            pub count: u32,
        }

        #[theseus::main(worker_threads = 2)]
        pub async fn run(command: Command, (a, mut b): (u32, u32)) -> std::io::Result<u32> {
            b += 1;
            let doubled = theseus::spawn(async move { command.count * 2 }).await?;
            Ok(doubled + a + b)
        }

        pub fn main() {
            let total = run(Command { count: 20 }, (1, 0)).unwrap();
            println!("total {total}");
        }
    }
    pub mod fails {
        #[theseus::main]
        pub async fn main() -> Result<(), std::io::Error> {
            theseus::spawn(async {}).await?;
            Err(std::io::Error::other("no such thing"))
        }
    }
}

/// Runs `program` with profiling off: these tests are about the runtime.
fn run(program: &str, env: &[(&str, &str)]) -> Output {
    child::command(program, env)
        .env("THESEUS", "0")
        .output()
        .unwrap()
}

/// The entry point of child processes; does nothing in the parent.
#[test]
fn child() {
    if let Some(program) = child_program() {
        eprintln!("child program {program} returned");
    }
}

#[test]
fn main_runs_and_returns() {
    let output = run("ok", &[]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("answer 42"));
}

#[test]
fn a_panic_in_main_ends_the_program_as_under_tokio() {
    let output = run("panics", &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(101), "{stderr}");
    assert!(stderr.contains("main gives up"), "{stderr}");
    assert!(
        !stderr.contains("child program panics returned"),
        "{stderr}"
    );
}

#[test]
fn main_can_be_any_async_fn_with_arguments() {
    let output = run("with_args", &[]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("total 42"),
        "{output:?}"
    );
}

#[test]
fn main_returning_err_is_passed_through() {
    let output = run("fails", &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no such thing"), "{stderr}");
}

#[test]
fn a_bad_worker_count_is_a_clear_error() {
    for bad in ["zero", "0", "99999"] {
        let output = run("ok", &[("THESEUS_WORKERS", bad)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("THESEUS_WORKERS=\"{bad}\"")),
            "{stderr}"
        );
        assert!(stderr.contains("1 to 1024"), "{stderr}");
    }
    // A worker count given in code wins over the variable, as in tokio.
    let output = run("fixed", &[("THESEUS_WORKERS", "zero")]);
    assert!(output.status.success(), "{output:?}");
    let output = run("ok", &[("THESEUS_WORKERS", "3")]);
    assert!(output.status.success(), "{output:?}");
}

// `#[theseus::test]` in tokio's forms: results, other attributes, options.

#[theseus::test]
async fn a_test_can_return_a_result() -> Result<(), Box<dyn std::error::Error>> {
    let value: u32 = theseus::spawn(async { "42" }).await?.parse()?;
    assert_eq!(value, 42);
    Ok(())
}

#[theseus::test(flavor = "multi_thread")]
#[should_panic(expected = "expected failure")]
async fn a_test_keeps_its_other_attributes() {
    theseus::spawn(async {}).await.unwrap();
    panic!("expected failure");
}

#[theseus::test(crate = "theseus", flavor = "current_thread")]
async fn a_test_can_name_the_crate() {
    assert_eq!(theseus::spawn(async { 1 }).await.unwrap(), 1);
}

mod renamed {
    // A program that calls the crate by another name says so with `crate`.
    use theseus as profiler_runtime;

    #[profiler_runtime::test(crate = "profiler_runtime")]
    async fn the_expansion_uses_that_name() {
        assert_eq!(profiler_runtime::spawn(async { 2 }).await.unwrap(), 2);
    }
}
