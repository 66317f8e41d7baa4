//! `starling pub`, `starling sub` and `starling rr`: Mosquitto 2.0's
//! mosquitto_pub, mosquitto_sub and mosquitto_rr, flag for flag, on the
//! Starling client library: the same options read the same way (and from a
//! defaults file), the same `-d` lines in the same order, the same output
//! (`-F`, `-v`, `-N`, `--pretty`), the same exit statuses.
//!
//! Layout:
//! - [`args`]: the options, read as Mosquitto reads them ([`cnum`]: C's number
//!   parsing; [`props`]: `-D`; [`config_file`]: the defaults file);
//! - [`session`]: Mosquitto's checks before connecting, and the connection;
//!   [`tls`]: when and how the connection uses TLS;
//! - [`debug`]: the `-d` lines; [`console`]: ordered output;
//! - [`receive`]: what `sub` and `rr` do with each packet, in the packet
//!   observer; [`listen`]: waiting and ending for `sub` and `rr`;
//! - [`pub_cmd`], [`sub_cmd`], [`rr_cmd`]: the three tools;
//! - [`sub_format`]: mosquitto_sub's message printer (`-F` and the rest);
//! - [`errors`]: failures, Mosquitto's texts for them, exit statuses;
//! - [`help`]: the text of `--help`.
//!
//! The differences from Mosquitto that are on purpose are said where they are
//! made. TLS is OpenSSL, as in Mosquitto; only OpenSSL engines are refused,
//! in one line, rather than connecting some other way.

mod args;
mod cnum;
mod config_file;
mod console;
mod debug;
mod errors;
mod help;
mod listen;
mod props;
mod pub_cmd;
mod receive;
mod rr_cmd;
mod session;
mod sub_cmd;
mod sub_format;
mod tls;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use self::args::{Loaded, Tool};
pub(crate) use self::errors::Fail;

/// The arguments of `starling pub`, `sub` or `rr`, exactly as given: they are
/// read by [`args`], Mosquitto's way (`-h` is the host; `--help` prints the help).
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub(crate) struct ToolArgs {
    /// Mosquitto's options; see `--help`.
    #[arg(
        num_args = 0..,
        allow_hyphen_values = true,
        trailing_var_arg = true,
        value_name = "OPTIONS"
    )]
    args: Vec<OsString>,
}

/// `starling pub`.
pub(crate) fn pub_main(args: ToolArgs) -> ExitCode {
    main(Tool::Pub, args)
}

/// `starling sub`.
pub(crate) fn sub_main(args: ToolArgs) -> ExitCode {
    main(Tool::Sub, args)
}

/// `starling rr`.
pub(crate) fn rr_main(args: ToolArgs) -> ExitCode {
    main(Tool::Rr, args)
}

fn main(tool: Tool, args: ToolArgs) -> ExitCode {
    let argv: Vec<Vec<u8>> = args.args.iter().map(os_bytes).collect();
    let cfg = match args::load(tool, &argv) {
        Ok(Loaded::Run(cfg)) => cfg,
        Ok(Loaded::Help) => return print_and_exit(&help::text(tool)),
        Ok(Loaded::Version) => return print_and_exit(&help::version(tool)),
        Err(fail) => {
            fail.report(tool, false);
            return ExitCode::from(fail.code);
        }
    };
    let quiet = cfg.quiet;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match tool {
            Tool::Pub => pub_cmd::run(*cfg).await,
            Tool::Sub => sub_cmd::run(*cfg).await,
            Tool::Rr => rr_cmd::run(*cfg).await,
        }
    });
    // A blocking read of stdin (pub -l) must not hold the exit up.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(fail) => {
            fail.report(tool, quiet);
            ExitCode::from(fail.code)
        }
    }
}

fn print_and_exit(text: &str) -> ExitCode {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// An argument's bytes: Mosquitto takes any bytes, a payload among them.
fn os_bytes(arg: &OsString) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        arg.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        arg.to_string_lossy().into_owned().into_bytes()
    }
}
