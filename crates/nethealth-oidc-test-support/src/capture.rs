//! A capture of what `tracing` and `log` emit, to check that secrets never reach the logs.

use std::fmt::{Debug, Write as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::NoSubscriber;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// What `log` records go to while at least one capture is alive (the `log` logger is process-wide).
static LOG_TEXT: Mutex<String> = Mutex::new(String::new());
static LOG_INSTALL: Once = Once::new();
static ACTIVE_CAPTURES: AtomicUsize = AtomicUsize::new(0);
/// A dispatcher that lives as long as the process; see [`capture_logs`].
static SECOND_DISPATCH: OnceLock<Dispatch> = OnceLock::new();

/// Everything logged at DEBUG and above since [`capture_logs`], until dropped.
///
/// `tracing` output is captured on the calling thread only (with `#[tokio::test]`'s current-thread runtime that
/// includes every task it runs). `log` output is captured process-wide, so it may include other tests' lines.
#[must_use = "the capture stops when dropped"]
pub struct LogCapture {
    tracing_text: Arc<Mutex<String>>,
    log_start: usize,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapture").finish_non_exhaustive()
    }
}

/// Starts capturing: a `tracing` subscriber at DEBUG for this thread, and a `log` logger at DEBUG for the process
/// (installed once; when the application already installed another one, only `tracing` is captured).
pub fn capture_logs() -> LogCapture {
    LOG_INSTALL.call_once(|| {
        if log::set_logger(&TextLogger).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
    // tracing-core asks only the registering thread's dispatcher for a new callsite's interest while at most one
    // dispatcher has ever been registered: a callsite first hit on another test's thread would then be cached as
    // "never" and vanish from this capture. A second, immortal dispatcher makes it ask every live dispatcher.
    SECOND_DISPATCH.get_or_init(|| Dispatch::new(NoSubscriber::default()));
    ACTIVE_CAPTURES.fetch_add(1, Ordering::SeqCst);
    let log_start = LOG_TEXT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    let tracing_text = Arc::new(Mutex::new(String::new()));
    let guard = tracing::subscriber::set_default(TextSubscriber {
        text: Arc::clone(&tracing_text),
        next_id: AtomicU64::new(1),
    });
    LogCapture {
        tracing_text,
        log_start,
        _guard: guard,
    }
}

impl LogCapture {
    /// The captured text so far: the `tracing` lines, then the `log` lines.
    pub fn text(&self) -> String {
        let mut out = self
            .tracing_text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let log_text = LOG_TEXT.lock().unwrap_or_else(PoisonError::into_inner);
        out.push_str(log_text.get(self.log_start..).unwrap_or_default());
        out
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        ACTIVE_CAPTURES.fetch_sub(1, Ordering::SeqCst);
    }
}

struct TextLogger;

impl log::Log for TextLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Debug && ACTIVE_CAPTURES.load(Ordering::SeqCst) > 0
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let mut text = LOG_TEXT.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = writeln!(
                text,
                "log {} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Writes every span (name and fields), every later field value, and every event as one text line.
struct TextSubscriber {
    text: Arc<Mutex<String>>,
    next_id: AtomicU64,
}

impl TextSubscriber {
    fn write(&self, line: impl FnOnce(&mut String)) {
        let mut text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        line(&mut text);
        text.push('\n');
    }
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for TextSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::DEBUG
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.write(|text| {
            let _ = write!(text, "span {}:", span.metadata().name());
            span.record(&mut Fields(text));
        });
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _span: &Id, values: &Record<'_>) {
        self.write(|text| {
            text.push_str("record:");
            values.record(&mut Fields(text));
        });
    }

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        self.write(|text| {
            let _ = write!(
                text,
                "{} {}:",
                event.metadata().level(),
                event.metadata().target()
            );
            event.record(&mut Fields(text));
        });
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
