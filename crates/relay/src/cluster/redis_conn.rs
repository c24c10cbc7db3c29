//! One way to talk to Redis whether the cluster's store is a single server or a Redis Cluster:
//! [`RedisConn`] wraps redis-rs's reconnecting connection manager or its cluster connection, and
//! [`connect`] makes one from the `--redis` URLs (one URL: a server; several: Cluster seeds).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How long one Redis command may take before it counts as failed.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Tries at reconnecting to one Redis Cluster node before its slots are looked up again.
const MAX_CONNECTION_ATTEMPTS: std::num::NonZeroUsize =
    std::num::NonZeroUsize::MIN.saturating_add(2);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the cluster's Redis: cheap to clone (clones share one multiplexed socket per
/// Redis server), reconnecting by itself after Redis comes back.
#[derive(Clone)]
pub enum RedisConn {
    /// One Redis server.
    Single(ConnectionManager),
    /// A Redis Cluster (commands go to the master of their key's slot, following failovers).
    Cluster(ClusterConnection),
}

/// Which kind of Redis the URLs name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--redis` given once.
    Single,
    /// `--redis` given more than once (or a comma list): Redis Cluster seed nodes.
    Cluster,
}

/// Connect to `urls` (checked to be non-empty by the caller). `block_timeout` is added to the
/// response timeout for connections that run blocking reads.
pub async fn connect(urls: &[String], block_timeout: Duration) -> redis::RedisResult<RedisConn> {
    let response_timeout = RESPONSE_TIMEOUT + block_timeout;
    if let [url] = urls {
        let client = redis::Client::open(url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisConn::Single(manager))
    } else {
        let client = ClusterClientBuilder::new(urls.iter().map(String::as_str))
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(response_timeout)
            .retries(3)
            .min_retry_wait(50)
            .max_retry_wait(500)
            // give up on a dead master's address after a few tries: its slots are then looked up
            // again, which finds the replica that took over
            .max_connection_attempts(MAX_CONNECTION_ATTEMPTS)
            .build()?;
        Ok(RedisConn::Cluster(client.get_async_connection().await?))
    }
}

impl RedisConn {
    /// Which kind of Redis this talks to.
    #[must_use]
    pub fn mode(&self) -> Mode {
        match self {
            RedisConn::Single(_) => Mode::Single,
            RedisConn::Cluster(_) => Mode::Cluster,
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}
