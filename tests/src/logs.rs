//! One log subscriber per test binary: every event at TRACE into a buffer (so
//! that tests can check that no secret reaches a log of the gateway or the
//! apps running in-process), and to the test output as `RUST_LOG` says.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

type Buffer = Arc<Mutex<Vec<u8>>>;

/// Installs the subscriber (once per binary; later calls do nothing).
pub fn init() {
    buffer();
}

/// Every log line of this test binary so far (all tests running in it), at TRACE.
pub fn captured() -> String {
    String::from_utf8_lossy(&buffer().lock().unwrap()).into_owned()
}

fn buffer() -> &'static Buffer {
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buf = Buffer::default();
        let w = buf.clone();
        // No timestamps: their microseconds would match a six-digit code
        // now and then among the many lines of a whole test binary.
        let captured = tracing_subscriber::fmt::layer()
            .without_time()
            .with_ansi(false)
            .with_writer(move || LogWriter(w.clone()))
            .with_filter(LevelFilter::TRACE);
        let shown = tracing_subscriber::fmt::layer().with_test_writer().with_filter(EnvFilter::from_default_env());
        let _ = tracing_subscriber::registry().with(captured).with(shown).try_init();
        buf
    })
}

struct LogWriter(Buffer);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
