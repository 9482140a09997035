//! JSON-lines logging: `{"timestamp":"…","level":"info","message":"…",…}`
//! on stderr, or only to `--log-file`. A small `tracing` layer of our own so
//! the format is exactly the reference one (lowercase level, flat fields).
//!
//! A shared engine process ([`crate::engine_proc`]) also hands each line to
//! a forwarder ([`forward_to`]) that passes it to the attached instances,
//! stops writing to its inherited stderr once it runs detached
//! ([`stop_direct`]), and raises its level when a more verbose instance
//! attaches ([`raise_level`]); an instance writes the lines it receives
//! with [`write_forwarded`].

use crate::cli::LogLevel;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

struct JsonLines {
    out: &'static Mutex<Option<Box<dyn Write + Send>>>,
}

/// Where this process's lines go (`None`: nowhere directly).
static OUT: Mutex<Option<Box<dyn Write + Send>>> = Mutex::new(None);

/// A forwarder of formatted lines (the shared engine's fan-out).
type Forward = Box<dyn Fn(Level, &str) + Send + Sync>;
static FORWARD: std::sync::OnceLock<Forward> = std::sync::OnceLock::new();

/// Changes the level filter (set by [`init`]).
type SetLevel = Box<dyn Fn(LevelFilter) + Send + Sync>;
static SET_LEVEL: std::sync::OnceLock<SetLevel> = std::sync::OnceLock::new();
static LEVEL: Mutex<LevelFilter> = Mutex::new(LevelFilter::INFO);

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            let _ = write!(self.rest, ",{}:{}", quote(field.name()), quote(value));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        let _ = write!(self.rest, ",{}:{value}", quote(field.name()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        let _ = write!(self.rest, ",{}:{value}", quote(field.name()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        let _ = write!(self.rest, ",{}:{value}", quote(field.name()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// JSON string literal for `s`.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

impl<S: Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let line = format!(
            "{{\"timestamp\":{},\"level\":\"{level}\",\"message\":{}{}}}\n",
            quote(&timestamp(SystemTime::now())),
            quote(&f.message),
            f.rest
        );
        if let Ok(mut out) = self.out.lock() {
            if let Some(out) = out.as_mut() {
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
            }
        }
        if let Some(fwd) = FORWARD.get() {
            fwd(*event.metadata().level(), line.trim_end());
        }
    }
}

static TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether log lines reach stderr (logging initialised, no `--log-file`).
pub fn to_stderr() -> bool {
    TO_STDERR.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the global subscriber. Fails only if the log file cannot be opened.
pub fn init(level: LogLevel, file: Option<&std::path::Path>) -> std::io::Result<()> {
    let out: Box<dyn Write + Send> = match file {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => Box::new(std::io::stderr()),
    };
    let filter = level_filter(level);
    if let Ok(mut o) = OUT.lock() {
        *o = Some(out);
    }
    if let Ok(mut l) = LEVEL.lock() {
        *l = filter;
    }
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = SET_LEVEL.set(Box::new(move |f| {
        let _ = handle.reload(f);
    }));
    tracing_subscriber::registry()
        .with(JsonLines { out: &OUT }.with_filter(filter))
        .init();
    TO_STDERR.store(file.is_none(), std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The filter for a `--log-level`.
pub fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    }
}

/// Hands every line from now on to `f` as well (once per process).
pub fn forward_to(f: impl Fn(Level, &str) + Send + Sync + 'static) {
    let _ = FORWARD.set(Box::new(f));
}

/// Stops writing lines to this process's own output; with `keep`, they go
/// to that file instead (a persistent engine's log).
pub fn stop_direct(keep: Option<Box<dyn Write + Send>>) {
    if let Ok(mut o) = OUT.lock() {
        *o = keep;
    }
    TO_STDERR.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Shows lines up to `level` from now on, if that is more verbose than now.
pub fn raise_level(level: Level) {
    let want = LevelFilter::from_level(level);
    let Ok(mut cur) = LEVEL.lock() else { return };
    if want > *cur {
        *cur = want;
        if let Some(set) = SET_LEVEL.get() {
            set(want);
        }
    }
}

/// Writes a line forwarded by the shared engine, at `level`, if this
/// instance's level shows it.
pub fn write_forwarded(level: &str, line: &str) {
    let l = match level {
        "error" => Level::ERROR,
        "warn" => Level::WARN,
        "info" => Level::INFO,
        "debug" => Level::DEBUG,
        _ => Level::TRACE,
    };
    let shown = LEVEL
        .lock()
        .map(|cur| LevelFilter::from_level(l) <= *cur)
        .unwrap_or(false);
    if !shown {
        return;
    }
    if let Ok(mut o) = OUT.lock() {
        if let Some(out) = o.as_mut() {
            // One write per line, as for our own lines.
            let _ = out.write_all(format!("{line}\n").as_bytes());
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_and_quotes() {
        let t = UNIX_EPOCH + Duration::from_millis(1_748_253_600_123);
        assert_eq!(timestamp(t), "2025-05-26T10:00:00.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
