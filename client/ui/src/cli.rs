//! The apps' edge: the command line in the user's language, prompts on the
//! console, and the exit code of a run.

use crate::strings::Key;
use thin_protocol::secret::Secret;
use thin_tunnel::entry::init_logging;
use zeroize::Zeroize;

/// Asks for a one-time password on standard error and reads it from the next
/// line of standard input (after the password line). End of input cancels.
/// The read runs on a thread of its own, so that an abandoned prompt (the code
/// expired meanwhile) does not keep the app from exiting.
pub fn otp_from_stdin(req: thin_tunnel::otp::OtpRequest) -> thin_tunnel::otp::OtpAnswer {
    use std::io::Write;
    let notice = if req.retry {
        crate::strings::fmt(Key::OTP_WRONG_TRIES, &[&req.tries_left])
    } else {
        crate::strings::fmt(Key::OTP_SENT, &[&req.destination])
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{notice}\n{} ", crate::strings::text(Key::OTP_PROMPT));
    let _ = err.flush();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let code = match std::io::stdin().read_line(&mut line) {
            Ok(n) if n > 0 => Some(line.trim().to_string()).filter(|c| !c.is_empty()).map(Secret::new),
            _ => None,
        };
        line.zeroize();
        let _ = tx.send(code);
    });
    Box::pin(async move { rx.await.ok().flatten() })
}

/// The command line of `C` as the user sees it: the brand's version line for
/// `--version` (the brand's version and build number), and `--help` in the
/// user's language.
pub fn command<C: clap::Parser>() -> clap::Command {
    let brand = thin_tunnel::brand::get();
    let line = crate::strings::fmt(Key::APP_VERSION_LINE, &[&brand.version, &brand.build]);
    let cmd = <C as clap::CommandFactory>::command().version(line);
    crate::cli_help::localize(cmd, crate::strings::language()).0
}

/// Parses the command line of `C` (see [`command`]). A mistake is told in the
/// user's language (exit code 2).
pub fn parse<C: clap::Parser>() -> C {
    thin_tunnel::platform::console::attach_parent_console();
    let cmd = command::<C>();
    let app = cmd.get_name().to_string();
    let fail = |e: clap::Error| -> ! {
        match crate::cli_help::error_text(&e, &app, crate::strings::language()) {
            Some(text) => {
                eprintln!("{text}");
                std::process::exit(2)
            }
            None => e.exit(),
        }
    };
    let matches = cmd.try_get_matches().unwrap_or_else(|e| fail(e));
    <C as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| fail(e))
}

/// Runs `body` on a tunnel runtime (`thin_tunnel::runtime`) with logging set
/// up; an error is printed as `<name>: error: ...` and gives exit code 1.
pub fn block_on<Fut>(name: &str, log_default: &str, body: Fut) -> std::process::ExitCode
where
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_logging(log_default);
    let rt = thin_tunnel::runtime::build(name).expect("tokio runtime");
    exit_code(name, rt.block_on(body))
}

/// The exit code of a result, printing the error.
pub fn exit_code(name: &str, r: anyhow::Result<()>) -> std::process::ExitCode {
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", crate::strings::fmt(Key::CLI_ERROR, &[&name, &format!("{e:#}")]));
            std::process::ExitCode::from(1)
        }
    }
}
