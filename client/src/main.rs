//! `seatkeeper-client`: a check-in or a release from the command line, for
//! install scripts and support. Prints one JSON object; exits 0 when
//! licensed (or released), 1 when not, 2 on an error it could not answer.

use std::path::PathBuf;
use std::process::ExitCode;

use seatkeeper_client::{Client, Error, Options};

const USAGE: &str = "usage:
  seatkeeper-client check-in --server URL --key KEY --product CODE --serial SERIAL [--cache DIR] [--queue] [--pinned-keys FILE]
  seatkeeper-client release  --server URL --key KEY --product CODE --serial SERIAL [--cache DIR]
The key may come from SEATKEEPER_PRODUCT_KEY instead of --key (arguments are visible to other users).
Exit status: 0 licensed (or released), 1 not, 2 an error it could not answer.";

struct Args {
    command: String,
    server: String,
    key: String,
    product: String,
    serial: String,
    cache: Option<PathBuf>,
    pinned_keys: Option<PathBuf>,
    queue: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = args.next().ok_or("name a command: check-in or release")?;
    if command != "check-in" && command != "release" {
        return Err(format!("unknown command {command:?}"));
    }
    let (mut server, mut key, mut product, mut serial) = (None, std::env::var("SEATKEEPER_PRODUCT_KEY").ok(), None, None);
    let (mut cache, mut pinned_keys, mut queue) = (None, None, false);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => server = Some(value()?),
            "--key" => key = Some(value()?),
            "--product" => product = Some(value()?),
            "--serial" => serial = Some(value()?),
            "--cache" => cache = Some(PathBuf::from(value()?)),
            "--pinned-keys" => pinned_keys = Some(PathBuf::from(value()?)),
            "--queue" => queue = true,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Args {
        command,
        server: server.ok_or("--server is needed")?,
        key: key.ok_or("--key (or SEATKEEPER_PRODUCT_KEY) is needed")?,
        product: product.ok_or("--product is needed")?,
        serial: serial.ok_or("--serial is needed")?,
        cache,
        pinned_keys,
        queue,
    })
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            eprintln!("{why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok((json, yes)) => {
            println!("{json}");
            ExitCode::from(if yes { 0 } else { 1 })
        }
        Err(error) => {
            println!("{}", serde_json::json!({"error": {"code": code(&error), "message": error.to_string()}}));
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(serde_json::Value, bool), Error> {
    let pinned_keys = match &args.pinned_keys {
        Some(file) => Some(std::fs::read_to_string(file).map_err(|e| Error::Config(format!("reading {}: {e}", file.display())))?),
        None => None,
    };
    let options = Options { cache_dir: args.cache.clone(), fetch_keys: pinned_keys.is_none(), pinned_keys, ..Options::default() };
    let client = Client::with_options(&args.server, &args.key, &args.product, options)?;
    if args.command == "release" {
        let released = client.release(&args.serial)?;
        return Ok((serde_json::json!({"released": released}), released));
    }
    let decision = client.check_in_or_wait(&args.serial, args.queue)?;
    let licensed = decision.licensed;
    Ok((serde_json::to_value(decision).unwrap_or_default(), licensed))
}

fn code(error: &Error) -> &'static str {
    match error {
        Error::InvalidKey => "invalid_api_key",
        Error::UnknownProduct => "unknown_product",
        Error::InvalidRequest(_) => "invalid_request",
        Error::Unreachable(_) => "unreachable",
        Error::Forged(_) => "forged_answer",
        Error::Config(_) => "bad_configuration",
    }
}
