//! `idfed exec CONNECTOR [--duration S] [--refresh] -- COMMAND ARGS…`: runs a command with a connector's
//! credentials, as `aws-vault exec` does.
//!
//! - By default the credentials are put in the command's environment only: `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and `AWS_CREDENTIAL_EXPIRATION` (RFC 3339), which the AWS
//!   CLI, boto3 and the AWS SDKs read. They do not outlive the credentials' expiry.
//! - With `--refresh`, the command gets a private container-credentials endpoint on 127.0.0.1 instead
//!   (`AWS_CONTAINER_CREDENTIALS_FULL_URI` with a random `AWS_CONTAINER_AUTHORIZATION_TOKEN`, served by
//!   [`crate::container_server`] for the command's lifetime), which fetches new credentials before the old
//!   ones end: a job running for hours never holds expired credentials.
//!
//! Whatever else in the environment would pick other credentials (a profile, other keys, another container
//! endpoint, a web identity) is removed from the command's environment. Nothing is written anywhere: the
//! credentials exist in idfed's memory (zeroed when dropped) and the command's environment. idfed passes
//! on SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the command, and exits as it did: its exit
//! code, or 128 plus the signal that ended it, as shells do.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

use crate::client::ClientError;
use crate::container_server::{Endpoint, IdfedSource, fetch};

/// The variables through which an AWS tool could find other credentials than those given: never passed
/// on to the command.
pub const CLEARED: [&str; 14] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
];

/// The signals passed on to the command.
const FORWARDED: [SignalKind; 6] = [
    SignalKind::interrupt(),
    SignalKind::terminate(),
    SignalKind::hangup(),
    SignalKind::quit(),
    SignalKind::user_defined1(),
    SignalKind::user_defined2(),
];

/// Runs `command` (program, then arguments) with `connector`'s credentials; its exit status is returned
/// as idfed's.
pub async fn run(
    connector: &str,
    duration_seconds: Option<u32>,
    why: crate::client::Why,
    refresh: bool,
    command: &[OsString],
) -> Result<ExitCode, ClientError> {
    let Some((program, args)) = command.split_first() else {
        return Err(ClientError(
            "no command given: idfed exec CONNECTOR -- COMMAND ARGS…".into(),
        ));
    };
    let source = IdfedSource {
        connector: connector.to_owned(),
        duration_seconds,
        why,
    };
    let mut command = tokio::process::Command::new(program);
    command.args(args).kill_on_drop(true);
    for name in CLEARED {
        command.env_remove(name);
    }
    // The endpoint lives as long as this function: as long as the command.
    let (stop_endpoint, endpoint_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serving = None;
    if refresh {
        let endpoint = Endpoint::bind(0, Box::new(source)).await?;
        command
            .env(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("http://{}/", endpoint.addr),
            )
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", endpoint.token.expose());
        serving = Some(tokio::spawn(endpoint.serve(async move {
            let _ = endpoint_stopped.await;
        })));
    } else {
        let credentials = fetch(&source).await?;
        command
            .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                credentials.secret_access_key.expose(),
            )
            .env("AWS_SESSION_TOKEN", credentials.session_token.expose())
            .env("AWS_CREDENTIAL_EXPIRATION", &credentials.expiration_text);
    }
    // Watched before the command starts: a signal in between must not end idfed and orphan it.
    let mut streams = Vec::new();
    for kind in FORWARDED {
        streams.push((
            kind,
            signal(kind).map_err(|e| ClientError(format!("cannot watch signals: {e}")))?,
        ));
    }
    let mut child = command
        .spawn()
        .map_err(|e| ClientError(format!("cannot run {}: {e}", program.to_string_lossy())))?;
    // The builder's copy of the environment (the credentials) is not kept while the command runs.
    drop(command);
    let status = {
        let pid = child.id();
        let forward = async {
            #[allow(clippy::infinite_loop)]
            loop {
                let received = first_signal(&mut streams).await;
                if let Some(pid) = pid {
                    // SAFETY: kill(2) with a pid of our own child and a valid signal number.
                    unsafe { libc::kill(pid as libc::pid_t, received) };
                }
            }
        };
        tokio::select! {
            status = child.wait() => status,
            () = forward => unreachable!("passing signals on never ends"),
        }
    }
    .map_err(|e| ClientError(format!("waiting for the command: {e}")))?;
    let _ = stop_endpoint.send(());
    if let Some(serving) = serving {
        let _ = serving.await;
    }
    Ok(exit_code(status))
}

/// The exit code a shell would give for `status`: the command's own, or 128 plus the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(255)),
        (None, None) => ExitCode::FAILURE,
    }
}

/// Waits for the first of the signals; its number.
async fn first_signal(streams: &mut [(SignalKind, tokio::signal::unix::Signal)]) -> i32 {
    std::future::poll_fn(|cx| {
        for (kind, stream) in streams.iter_mut() {
            if stream.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(kind.as_raw_value());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_shells() {
        let exited = |code: i32| std::process::ExitStatus::from_raw(code << 8);
        let killed = |signal: i32| std::process::ExitStatus::from_raw(signal);
        assert_eq!(exit_code(exited(0)), ExitCode::SUCCESS);
        assert_eq!(exit_code(exited(7)), ExitCode::from(7));
        assert_eq!(exit_code(killed(libc::SIGTERM)), ExitCode::from(143));
        assert_eq!(exit_code(killed(libc::SIGKILL)), ExitCode::from(137));
    }
}
