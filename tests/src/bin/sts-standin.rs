//! `sts-standin`: idfed's AWS STS stand-in ([`idfed_tests::sts_standin`]) as a process of its own, for
//! benchmarks that must not share a runtime with it.
//!
//! `sts-standin [--port N] [--delay-ms N | --delay-us N] [--throttle] [--lifetime-s N] [--stdin-guard]` listens on
//! `127.0.0.1:N` (a free port by default), prints exactly one line, `listening http://127.0.0.1:PORT`, once it
//! accepts connections, and serves until killed (or Ctrl-C). With `--stdin-guard` it also exits when its stdin
//! reaches end of file (what [`idfed_tests::sts_standin::spawn_process`] uses, so that the child never outlives
//! its parent).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use idfed_tests::sts_standin::{LISTENING_PREFIX, StandInOptions, StsStandIn};

const USAGE: &str = "usage: sts-standin [--port N] [--delay-ms N | --delay-us N] [--throttle] [--lifetime-s N] [--stdin-guard]";

/// The options, and whether to exit at the end of stdin.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<(StandInOptions, bool), String> {
    let mut options = StandInOptions::default();
    let mut stdin_guard = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<u64, String> {
            let text = inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs {what}"))?;
            text.parse()
                .map_err(|_| format!("{name}: {text:?} is not {what}"))
        };
        match name.as_str() {
            "--port" => {
                options.port = u16::try_from(value("a port number")?)
                    .map_err(|_| "--port: not a port number".to_owned())?;
            }
            "--delay-ms" => {
                options.delay = Duration::from_millis(value("a number of milliseconds")?)
            }
            "--delay-us" => {
                options.delay = Duration::from_micros(value("a number of microseconds")?)
            }
            "--lifetime-s" => {
                options.lifetime = Some(Duration::from_secs(value("a number of seconds")?))
            }
            "--throttle" if inline.is_none() => options.throttle = true,
            "--stdin-guard" if inline.is_none() => stdin_guard = true,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok((options, stdin_guard))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (options, stdin_guard) = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("sts-standin: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let port = options.port;
    let standin = match StsStandIn::try_start(options).await {
        Ok(standin) => standin,
        Err(e) => {
            eprintln!("sts-standin: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{LISTENING_PREFIX}{}", standin.endpoint())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    if stdin_guard {
        std::thread::spawn(|| {
            let mut buffer = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while let Ok(1..) = stdin.read(&mut buffer) {}
            std::process::exit(0);
        });
    }
    let _ = tokio::signal::ctrl_c().await;
    drop(standin);
    ExitCode::SUCCESS
}
