//! The local outbox as the central system's relay reads it (`GET /v1/events`): events in
//! outbox order, each as it is (or will be) sent, with its delivery state.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;
use serde::Serialize;

use crate::access::{Action, Caller};
use crate::db::lock;
use crate::error::Result;
use crate::events::{Envelope, envelope, outbox};

/// Where an event stands: delivered to the broker, parked (can never be sent) or waiting.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub delivered: bool,
    pub parked_reason: Option<String>,
    pub attempts: i64,
}

/// One outbox row: its envelope, or (for a row that can never be sent) its id and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutboxEntry {
    pub seq: i64,
    pub event: Option<Envelope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub outbox: Delivery,
}

pub struct LocalOutbox {
    /// A connection of its own: paging never holds a writer's lock.
    reads: Mutex<Connection>,
    site: String,
}

impl LocalOutbox {
    pub fn open(db: &Path, site: &str) -> Result<Self> {
        Ok(Self { reads: Mutex::new(crate::db::connect(db)?), site: site.to_string() })
    }

    /// Events after `after`, at most `limit`.
    pub fn after(&self, who: &Caller, after: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        who.may(Action::ReadEvents)?;
        let rows = outbox::after(&lock(&self.reads), after, limit)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let outbox =
                    Delivery { delivered: r.delivered, parked_reason: r.parked_reason.clone(), attempts: r.attempts };
                match envelope(&r, &self.site) {
                    Ok(env) => OutboxEntry { seq: r.seq, event: Some(env), id: None, error: None, outbox },
                    Err(reason) => OutboxEntry { seq: r.seq, event: None, id: Some(r.id), error: Some(reason), outbox },
                }
            })
            .collect())
    }
}
