//! What the command line prints: standard output that a reader may close
//! early (`sandcron job ls --output json | head`), JSON as the API gives
//! it, and the short forms tables show (a schedule in a few words).

use std::io::Write;

use serde_json::Value;

/// `println!` for the command's results: a reader that went away (`| head`)
/// ends the command quietly instead of with a panic (see [`line`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::print::line(format_args!($($arg)*))
    };
}
pub(super) use out;

/// Writes one line to standard output (the `out!` macro).
pub(super) fn line(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n"));
    if let Err(error) = written.and_then(|()| stdout.flush()) {
        stop(&error);
    }
}

/// Writes bytes to standard output as they are.
pub(super) fn write(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        stop(&error);
    }
}

/// Ends the command when standard output cannot be written: quietly and
/// successfully when its reader has gone (as `head` does once it has what it
/// wants), with an error otherwise (a full disk behind a redirection).
fn stop(error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {error}");
    std::process::exit(1);
}

/// Prints a value as indented JSON.
pub(super) fn print_json(value: &Value) {
    out!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// "cron 0 8 * * MON-FRI (Europe/Berlin)", "every 30s", "on demand".
pub(super) fn describe_schedule(schedule: &Value) -> String {
    let Some(fields) = schedule.as_object() else {
        return "on demand".to_string();
    };
    let text = |field: &str| fields.get(field).and_then(Value::as_str).unwrap_or_default();
    let kind = ["cron", "every", "after", "at"]
        .into_iter()
        .find(|kind| fields.contains_key(*kind))
        .unwrap_or_default();
    let base = match kind {
        "cron" => format!("cron {} ({})", text("cron"), text("timezone")),
        kind => format!("{kind} {}", text(kind)),
    };
    let rules: Vec<&str> = ["jitter", "exclude", "not_before", "not_after", "max_fires"]
        .into_iter()
        .filter(|rule| fields.contains_key(*rule))
        .collect();
    if rules.is_empty() {
        base
    } else {
        format!("{base} +{}", rules.join(","))
    }
}
