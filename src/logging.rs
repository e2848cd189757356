//! Log output: `tracing` events to stderr, filtered by `FACEWATCH_LOG` (an `EnvFilter`
//! directive such as `info` or `facewatch=debug`; default `warn`). Started by systemd with
//! stderr connected to the journal, the events go to the journal natively instead (levels as
//! `PRIORITY`, span and event fields as journal fields), as systemd.exec(5) recommends.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Clients whose debug lines quote the server URL whole, credentials included (`ureq`'s
/// "sending request POST <url>", `async_nats`'s `server = <addr>`): held at `info` when the
/// filter asks for more, unless the directive names them.
const QUOTE_URLS: [&str; 2] = ["ureq", "async_nats"];

/// Installs the subscriber; a second call (or one after another subscriber) does nothing.
pub fn init() {
    let given = std::env::var("FACEWATCH_LOG").ok();
    let filter = filter(given.as_deref());
    let journal = stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref(), stderr_id())
        .then(|| tracing_journald::layer().ok())
        .flatten();
    match journal {
        Some(journal) => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journal.with_syslog_identifier("facewatch".into()))
                .try_init();
        }
        None => {
            let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
        }
    }
}

/// The device and inode of our stderr, which systemd names in `JOURNAL_STREAM` when it is
/// the journal's stream socket.
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/fd/2").ok().map(|m| (m.dev(), m.ino()))
}

/// `JOURNAL_STREAM` is `<device>:<inode>`; it is inherited by children whose stderr may be
/// anything else, so it counts only when it names our stderr.
fn stderr_is_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let parsed = journal_stream
        .and_then(|v| v.split_once(':'))
        .and_then(|(d, i)| Some((d.trim().parse::<u64>().ok()?, i.trim().parse::<u64>().ok()?)));
    parsed.is_some() && parsed == stderr
}

fn filter(given: Option<&str>) -> EnvFilter {
    let mut filter = given.and_then(|d| EnvFilter::try_new(d).ok()).unwrap_or_else(|| EnvFilter::new("warn"));
    if filter.max_level_hint().is_some_and(|l| l > LevelFilter::INFO) {
        for target in QUOTE_URLS.into_iter().filter(|t| !given.unwrap_or("").contains(t)) {
            if let Ok(d) = format!("{target}=info").parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_used_only_when_it_is_our_stderr() {
        assert!(stderr_is_journal(Some("8:1234"), Some((8, 1234))));
        assert!(!stderr_is_journal(Some("8:1234"), Some((8, 99))), "inherited from a parent with another stderr");
        assert!(!stderr_is_journal(None, Some((8, 1234))));
        assert!(!stderr_is_journal(Some("garbage"), Some((8, 1234))));
        assert!(!stderr_is_journal(Some("8:1234"), None));
        // This test's own stderr is not the journal, whatever the variable says.
        assert!(!stderr_is_journal(Some("0:0"), stderr_id()));
    }

    #[test]
    fn clients_that_quote_urls_stay_at_info_unless_named() {
        let shown = |d: Option<&str>| filter(d).to_string();
        assert_eq!(shown(None), "warn");
        assert_eq!(shown(Some("info")), "info");
        let debug = shown(Some("debug"));
        assert!(debug.contains("ureq=info") && debug.contains("async_nats=info"), "{debug}");
        let named = shown(Some("debug,async_nats=trace"));
        assert!(named.contains("async_nats=trace") && named.contains("ureq=info"), "{named}");
    }

    /// The log as the subscriber writes it, kept for the test to read.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broker_that_cannot_be_reached_is_logged_without_its_password_even_at_debug() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("nats://fw:n4ts-pa55@127.0.0.1:{port}");
        let log = Captured::default();
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_env_filter(filter(Some("debug")))
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let o = crate::events::nats::NatsOptions {
                url: crate::secret::SecretUrl::new(&url),
                stream: "FACEWATCH".into(),
                replicas: 1,
                max_age: std::time::Duration::from_secs(60),
                duplicate_window: std::time::Duration::from_secs(60),
            };
            let e = rt.block_on(crate::events::nats::NatsSink::connect(&o)).err().expect("nothing listens there");
            // What the publisher logs when the broker is unreachable.
            tracing::warn!(error = %e, "broker unreachable; events wait in the outbox");
        });
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains(&format!("connecting to nats://fw:***@127.0.0.1:{port}")), "{text}");
        assert!(!text.contains("n4ts-pa55"), "{text}");
    }
}
