//! `facewatch serve`: the service on a multi-threaded runtime.

use std::process::ExitCode;

use anyhow::Context;

use facewatch::config::ServiceConfig;

pub fn run(cfg: ServiceConfig) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(facewatch::app::run(cfg))?;
    Ok(ExitCode::SUCCESS)
}
