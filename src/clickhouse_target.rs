//! The ClickHouse side of `import` and `search`: connection options, and a writer that feeds
//! the index crate's sink from synchronous code (the CLI has no async runtime of its own).

use std::time::Duration;

use anyhow::Context;
use citysoc_collector::Event;
use citysoc_index::clickhouse_store::SinkConfig;
use citysoc_index::{ClickHouseSink, ClickHouseStore};
use tokio::runtime::Runtime;

/// Options naming a ClickHouse server.
#[derive(Debug, Clone, clap::Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP address (e.g. http://127.0.0.1:8123): import writes there too, search
    /// can read from there (`--backend clickhouse`).
    #[arg(long)]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database holding the events table.
    #[arg(long, default_value = "citysoc")]
    pub clickhouse_database: String,
}

/// A runtime for the ClickHouse client: one worker is plenty for a client that mostly waits.
pub fn runtime() -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime for ClickHouse")
}

/// Connects to the server named by `args` and makes sure the schema exists.
pub fn connect(runtime: &Runtime, url: &str, database: &str) -> anyhow::Result<ClickHouseStore> {
    runtime.block_on(async {
        let store = ClickHouseStore::connect(url, database)
            .await
            .with_context(|| format!("cannot reach ClickHouse at {url}"))?;
        let version = store
            .ensure_schema()
            .await
            .context("cannot create the ClickHouse schema")?;
        eprintln!("citysoc: ClickHouse {version} at {url}, database {database}");
        Ok(store)
    })
}

/// Batches on their way to ClickHouse through the sink (bounded queue, retries with backoff;
/// when the queue is full, `send` waits: an import never drops events).
pub struct ClickHouseWriter {
    runtime: Runtime,
    sink: ClickHouseSink,
}

impl ClickHouseWriter {
    /// A writer when a server is named, `None` otherwise.
    pub fn open(args: &ClickHouseArgs) -> anyhow::Result<Option<Self>> {
        let Some(url) = &args.clickhouse_url else {
            return Ok(None);
        };
        let runtime = runtime()?;
        let store = connect(&runtime, url, &args.clickhouse_database)?;
        let sink = runtime.block_on(async { ClickHouseSink::start(store, SinkConfig::default()) });
        Ok(Some(ClickHouseWriter { runtime, sink }))
    }

    /// Queues a copy of `batch`.
    pub fn send(&mut self, batch: &[Event]) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.runtime
            .block_on(self.sink.send(batch.to_vec()))
            .context("cannot queue events for ClickHouse")
    }

    /// Waits until everything queued is inserted (up to a minute of retries) and says what
    /// happened; an error when events could not be inserted.
    pub fn finish(self) -> anyhow::Result<String> {
        let ClickHouseWriter { runtime, sink } = self;
        let stats = runtime
            .block_on(sink.close(Duration::from_secs(60)))
            .context("not every event reached ClickHouse")?;
        Ok(format!(
            "ClickHouse: {} events inserted, {} retries, {} dropped",
            stats.inserted, stats.retries, stats.dropped
        ))
    }
}
