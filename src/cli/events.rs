//! `facewatch events tail`: follows the central JetStream stream.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum EventsAction {
    /// Print events from the JetStream stream, one JSON line each, with a durable consumer that
    /// resumes where it stopped.
    Tail {
        // May carry credentials: help never shows the variable's value.
        #[arg(long, env = "FACEWATCH_EVENTS__NATS_URL", hide_env_values = true)]
        nats: String,
        #[arg(long, default_value = "FACEWATCH")]
        stream: String,
        /// Consumer name: each operator or system uses its own.
        #[arg(long, default_value = "facewatch-tail")]
        durable: String,
        /// Subject filter, e.g. "facewatch.*.*.alert.>".
        #[arg(long, default_value = "")]
        filter: String,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds without a new event.
        #[arg(long)]
        idle_exit: Option<u64>,
    },
}

pub fn run(action: EventsAction) -> anyhow::Result<ExitCode> {
    let EventsAction::Tail { nats, stream, durable, filter, count, idle_exit } = action;
    let o = facewatch::events::tail::TailOptions {
        url: nats,
        stream,
        durable,
        filter,
        count,
        idle_exit: idle_exit.map(std::time::Duration::from_secs),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut out = std::io::stdout().lock();
    rt.block_on(facewatch::events::tail::tail(&o, |line| {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }))?;
    Ok(ExitCode::SUCCESS)
}
