//! Log output: `tracing` lines written to stderr in batches, in order with everything
//! else the CLI prints there.
//!
//! A cold run logs one line per changed resource (10 000 lines for 10 000 new files).
//! Written one `write(2)` each, as `tracing_subscriber`'s stderr writer does, those lines
//! were ~12 % of a cold run at 10 000 files, to a file or a pipe alike. Here a line is
//! appended to a buffer, and one flusher thread writes the buffer out:
//!
//! - a line that follows a quiet moment (no write for [`LINGER`]) is written at once, so a
//!   drift repair's line shows up when it happens;
//! - under a burst, the buffer is written at most once per [`LINGER`];
//! - a buffer that reaches [`HIGH_WATER`] is written by the logging thread itself, which
//!   then waits for stderr like an unbuffered writer would (a stalled reader of a pipe
//!   holds the engine back instead of the buffer growing without bound).
//!
//! Everything else the CLI prints on stderr (errors, the closing summary) goes through
//! [`eprint()`], which writes the buffered lines first; [`flush`] is called before the
//! process exits, and a panic flushes what is buffered before its message.
//!
//! Hand-written rather than `tracing-appender`'s non-blocking writer: that one hands each
//! line to its thread through a channel and writes it as it arrives, so at our rates it
//! still makes one `write` per line (and one wake-up of its thread), and it has no flush
//! that orders its lines with direct writes to stderr.
//!
//! **What a line may hold.** Log lines quote resource names, file contents, command
//! output and what plugins say, none of which homeostat trusts. [`Fields`] formats every
//! event's fields: it escapes their control characters ([`crate::sys::text::escape`]: a
//! newline cannot start a forged line, an escape sequence cannot reach the terminal) and
//! cuts the line at [`MAX_LOG_LINE`] bytes with a marker. Text laid out in lines goes in
//! one of the [`MULTI_LINE`] fields instead (`diff`: the unified diffs of `--noop`;
//! `lines`: errors of several paragraphs): each of its lines is escaped and written below
//! the line, indented by two spaces, so every line that starts at column 0 is one of
//! homeostat's own. [`eprint()`] escapes what it prints the same way, keeping only the
//! line breaks of the text it was given (errors of several paragraphs).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

use crate::sys::text;

/// The longest a line waits in the buffer while lines keep coming.
pub const LINGER: Duration = Duration::from_millis(2);

/// Buffered bytes at which the writer of a line writes the buffer itself.
pub const HIGH_WATER: usize = 1 << 20;

/// Longest log line, in bytes before escaping (the message and its fields; a `diff`
/// below it has its own cap): longer ones are cut with a marker.
pub const MAX_LOG_LINE: usize = 64 << 10;

/// Longest multi-line field written below a log line.
pub const MAX_LOG_DIFF: usize = 4 << 20;

/// The fields whose text is written below the line, line by line (escaped, indented).
pub const MULTI_LINE: [&str; 2] = ["diff", "lines"];

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One line per event, for people.
    #[default]
    Text,
    /// One JSON object per line (tracing's fields flattened: `timestamp`, `level`,
    /// `message`, ...), for log collectors; what the CLI prints besides (errors, the
    /// closing summary) is written as `{"message": ...}` lines too.
    Json,
}

/// Whether text lines are coloured (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Color {
    /// When stderr is a terminal and `NO_COLOR` is not set.
    #[default]
    Auto,
    Always,
    Never,
}

/// The logging flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `-v` count: debug, trace.
    pub verbose: u8,
    /// `-q`: warnings and errors only.
    pub quiet: bool,
    pub format: Format,
    pub color: Color,
}

/// Install the `tracing` subscriber: `RUST_LOG` if set, otherwise info (warn with `-q`,
/// debug, trace with `-v`, `-vv`), written through the batching sink.
pub fn init(opts: Options) {
    let default = match (opts.quiet, opts.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},wasmtime=warn,cranelift=warn"))
    });
    let sink = Sink::global();
    if let Err(e) = std::thread::Builder::new()
        .name("homeostat-log".into())
        .spawn(|| sink.flusher())
    {
        // Without the thread every line is written by its caller, as unbuffered.
        eprintln!("warning: cannot start the log thread ({e}); logging unbuffered");
        lock(&sink.pending).direct = true;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        sink.flush_unless_busy();
        previous(info);
    }));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_target(false);
    match opts.format {
        Format::Text => {
            let ansi = match opts.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => {
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            builder.with_ansi(ansi).fmt_fields(Fields).init();
        }
        Format::Json => {
            lock(&sink.pending).json = true;
            // JSON escapes control characters itself: no line can be forged.
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .init();
        }
    }
}

/// Formats the fields of every log event (see the module's "What a line may hold").
pub struct Fields;

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut collected = Collected::default();
        fields.record(&mut collected);
        collected.write(&mut writer)
    }
}

/// An event's fields, gathered before any is written: the message first, the other
/// fields after it, the [`MULTI_LINE`] ones below.
#[derive(Default)]
struct Collected {
    line: String,
    below: String,
}

impl Collected {
    fn field(&mut self, field: &Field) {
        if field.name() != "message" {
            if !self.line.is_empty() {
                self.line.push(' ');
            }
            self.line.push_str(field.name());
            self.line.push('=');
        }
    }

    fn write(self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str(&text::one_line(self.line, MAX_LOG_LINE))?;
        for line in text::clip_owned(self.below, MAX_LOG_DIFF).lines() {
            w.write_str("\n  ")?;
            w.write_str(&text::escape(line))?;
        }
        Ok(())
    }
}

impl Visit for Collected {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if MULTI_LINE.contains(&field.name()) {
            if !self.below.is_empty() {
                self.below.push('\n');
            }
            let _ = write!(self.below, "{value:?}");
            return;
        }
        self.field(field);
        let _ = write!(self.line, "{value:?}");
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if MULTI_LINE.contains(&field.name()) {
            if !self.below.is_empty() {
                self.below.push('\n');
            }
            self.below.push_str(value);
            return;
        }
        self.field(field);
        self.line.push_str(value);
    }
}

/// Write every buffered line to stderr now.
pub fn flush() {
    Sink::global().flush();
}

/// Print `text` on stderr after every line logged before it (`eprint!` that keeps the
/// order with the log).
pub fn eprint(text: &str) {
    Sink::global().eprint(text);
}

/// The buffer between the threads that log and stderr.
pub struct Sink {
    pending: Mutex<Pending>,
    /// Signalled when the buffer stops being empty.
    wake: Condvar,
    /// Stderr, held from taking the buffer until it is written: batches and direct
    /// prints reach it in the order they were taken.
    out: Mutex<Box<dyn Write + Send>>,
}

struct Pending {
    buf: Vec<u8>,
    /// `--log-format json`: [`eprint()`] writes JSON lines too.
    json: bool,
    /// Lines are written by their callers (no flusher thread).
    direct: bool,
}

/// Poisoning cannot leave these locks' data inconsistent (bytes appended or taken whole).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    fn global() -> &'static Sink {
        static SINK: OnceLock<Sink> = OnceLock::new();
        SINK.get_or_init(|| Sink::new(Box::new(std::io::stderr())))
    }

    fn new(out: Box<dyn Write + Send>) -> Sink {
        Sink {
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                json: false,
                direct: false,
            }),
            wake: Condvar::new(),
            out: Mutex::new(out),
        }
    }

    fn flush(&self) {
        self.write_out(&mut **lock(&self.out));
    }

    /// [`Sink::flush`] for the panic hook: skipped when stderr is being written (the panic
    /// may have happened in this very thread while it held `out`; waiting would hang).
    fn flush_unless_busy(&self) {
        if let Ok(mut out) = self.out.try_lock() {
            self.write_out(&mut **out);
        }
    }

    fn eprint(&self, text: &str) {
        let text = if lock(&self.pending).json {
            text.lines()
                .map(|line| format!("{}\n", serde_json::json!({ "message": line })))
                .collect()
        } else {
            text::escape_lines(text).into_owned()
        };
        let mut out = lock(&self.out);
        self.write_out(&mut **out);
        let _ = out.write_all(text.as_bytes());
    }

    /// The flusher thread: waits for a line, lingers so a burst shares one write, writes.
    fn flusher(&self) {
        let mut last: Option<Instant> = None;
        loop {
            {
                let mut p = lock(&self.pending);
                while p.buf.is_empty() {
                    p = self.wake.wait(p).unwrap_or_else(PoisonError::into_inner);
                }
            }
            if let Some(wait) = last.and_then(|at| LINGER.checked_sub(at.elapsed())) {
                std::thread::sleep(wait);
            }
            self.flush();
            last = Some(Instant::now());
        }
    }

    /// Write the buffer to `out`, which the caller has locked.
    fn write_out(&self, out: &mut dyn Write) {
        let buf = std::mem::take(&mut lock(&self.pending).buf);
        if !buf.is_empty() {
            // As tracing's own stderr writer: a log line that cannot be written is lost.
            let _ = out.write_all(&buf);
        }
    }

    fn append(&self, line: &[u8]) {
        let mut p = lock(&self.pending);
        let was_empty = p.buf.is_empty();
        p.buf.extend_from_slice(line);
        let (full, direct) = (p.buf.len() >= HIGH_WATER, p.direct);
        drop(p);
        if full || direct {
            self.flush();
        } else if was_empty {
            self.wake.notify_one();
        }
    }
}

/// The writer `tracing_subscriber` gets for each event: it hands over each formatted
/// line with one `write_all`, so a line is appended whole.
pub struct Line(&'static Sink);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for &'static Sink {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Records each `write` it gets.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).concat()).unwrap()
        }

        fn writes(&self) -> usize {
            lock(&self.0).len()
        }
    }

    fn line(sink: &'static Sink, text: &str) {
        sink.make_writer().write_all(text.as_bytes()).unwrap();
    }

    fn leaked(out: &Recorder) -> &'static Sink {
        Box::leak(Box::new(Sink::new(Box::new(out.clone()))))
    }

    #[test]
    fn buffered_lines_come_before_a_direct_print() {
        let out = Recorder::default();
        let sink = leaked(&out);
        line(sink, "one\n");
        line(sink, "two\n");
        assert_eq!(out.text(), "", "nothing is written without the flusher");
        sink.eprint("summary\n");
        assert_eq!(out.text(), "one\ntwo\nsummary\n");
        line(sink, "three\n");
        sink.flush();
        assert_eq!(out.text(), "one\ntwo\nsummary\nthree\n");
    }

    /// What `log` writes through a subscriber formatted like the real one (no time).
    fn logged(log: impl FnOnce()) -> String {
        let out = Recorder::default();
        let sink = leaked(&out);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(sink)
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .fmt_fields(Fields)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        sink.flush();
        out.text()
    }

    #[test]
    fn a_log_line_cannot_be_forged_nor_carry_escape_sequences() {
        let evil = "hello\n2026-01-01T00:00:00.000000Z  INFO file[x]: forged\x1b[2J\x1b]0;t\x07";
        let text = logged(|| tracing::info!("hostile[bad]: {evil}"));
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(
            text.contains(
                "hostile[bad]: hello\\n2026-01-01T00:00:00.000000Z  INFO file[x]: forged\\x1b[2J\\x1b]0;t\\x07"
            ),
            "{text:?}"
        );
        assert!(!text.contains('\x1b'));
        // Fields other than the message too.
        let text = logged(|| tracing::warn!(who = %"a\nb", "msg"));
        assert!(
            text.contains("msg who=a\\nb") && text.lines().count() == 1,
            "{text:?}"
        );
    }

    #[test]
    fn a_diff_keeps_its_lines_indented_and_escaped() {
        let diff = "--- /m\n+++ /m\n-old\x1b[31m\n+2026-01-01T00:00:00Z  INFO forged\n same";
        let text = logged(|| tracing::info!(diff = %diff, "file[m]: would change (noop): content"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text:?}");
        assert!(
            lines[0].ends_with("file[m]: would change (noop): content"),
            "{text:?}"
        );
        assert_eq!(
            &lines[1..],
            [
                "  --- /m",
                "  +++ /m",
                "  -old\\x1b[31m",
                "  +2026-01-01T00:00:00Z  INFO forged",
                "   same"
            ]
        );
    }

    #[test]
    fn a_long_line_is_cut_with_a_marker() {
        let big = "x".repeat(MAX_LOG_LINE * 4);
        let text = logged(|| tracing::info!("r[n]: {big}"));
        assert_eq!(text.lines().count(), 1);
        assert!(text.len() < MAX_LOG_LINE + 200, "{}", text.len());
        assert!(text.contains("bytes cut] …"), "a visible marker");
    }

    #[test]
    fn direct_prints_keep_their_lines_and_escape_the_rest() {
        let out = Recorder::default();
        let sink = leaked(&out);
        sink.eprint("error: one\n  two \x1b[1mbold\r\n");
        assert_eq!(out.text(), "error: one\n  two \\x1b[1mbold\\r\n");
    }

    #[test]
    fn a_panic_writes_the_buffer_unless_stderr_is_held() {
        let out = Recorder::default();
        let sink = leaked(&out);
        line(sink, "before the panic\n");
        let held = lock(&sink.out);
        sink.flush_unless_busy();
        drop(held);
        assert_eq!(out.text(), "", "returns without waiting for the writer");
        sink.flush_unless_busy();
        assert_eq!(out.text(), "before the panic\n");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_thread_that_logs() {
        let out = Recorder::default();
        let sink = leaked(&out);
        let big = "x".repeat(HIGH_WATER / 2 - 1) + "\n";
        line(sink, &big);
        assert_eq!(out.writes(), 0);
        line(sink, &big);
        assert_eq!(out.text(), big.repeat(2), "written without the flusher");
    }

    #[test]
    fn without_the_flusher_every_line_is_written_by_its_caller() {
        let out = Recorder::default();
        let sink = leaked(&out);
        lock(&sink.pending).direct = true;
        line(sink, "one\n");
        assert_eq!(out.text(), "one\n");
    }

    #[test]
    fn the_flusher_writes_a_lone_line_and_batches_a_burst() {
        let out = Recorder::default();
        let sink = leaked(&out);
        // The thread lives as long as the test binary: there is no way to end it, as
        // there is none in the real process.
        std::thread::spawn(|| sink.flusher());
        let written = |text: &str| {
            for _ in 0..1000 {
                if out.text() == text {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        };
        line(sink, "lone\n");
        assert!(written("lone\n"), "got {:?}", out.text());
        let mut all = String::from("lone\n");
        for i in 0..2000 {
            let text = format!("burst {i}\n");
            line(sink, &text);
            all.push_str(&text);
        }
        assert!(written(&all), "every line, in order");
        // 2 000 lines logged back to back share writes (one per LINGER at most); the
        // bound is loose so a preempted test thread cannot fail it.
        assert!(out.writes() < 200, "{} writes", out.writes());
    }
}
