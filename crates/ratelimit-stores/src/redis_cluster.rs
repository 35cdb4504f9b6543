//! One batch on a Redis Cluster: every command routed to the master that serves its key's slot
//! (redis-rs' cluster connection: topology discovered from the seed nodes, MOVED / ASK
//! followed, slots refreshed after a redirect or a lost node, READONLY from a demoted master
//! re-routed). The batch's commands are written at once, so each node's multiplexed connection
//! carries its share as one pipeline on the wire; their answers come back as items, in order.
//!
//! A script's keys must all live in one slot: the JS facade gives every key of one identifier
//! the hash tag `{identifier}` on a cluster (see keys in docs/ARCHITECTURE.md), and sends keys
//! of other slots (dynamic limits, analytics, deny lists) as commands of their own.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError};

use crate::redis_tcp::{
    is_tls_failure, never_sent, reply_of, scrub_password, RedisUrl, CONNECT_TIMEOUT,
};
use ratelimit_core::pipeline::{Attempt, Command};
use ratelimit_core::reply::{Reply, StoreError};

pub(crate) struct RedisCluster {
    client: ClusterClient,
    /// The seed nodes' `host:port`: what error messages may show.
    display: String,
    /// Kept only to scrub them from error texts.
    passwords: Vec<String>,
    connection: Mutex<Option<ClusterConnection>>,
    connecting: tokio::sync::Mutex<()>,
}

impl RedisCluster {
    /// `seeds`: one or more nodes of the cluster (`redis://` or `rediss://`, all alike); the
    /// rest of the topology is asked of them.
    pub(crate) fn new(
        seeds: &[String],
        response_timeout: Duration,
        accept_invalid_certs: bool,
    ) -> Result<Self, StoreError> {
        if seeds.is_empty() {
            return Err(StoreError::InvalidConfig(
                "a Redis Cluster needs at least one node URL".into(),
            ));
        }
        let targets = seeds
            .iter()
            .map(|seed| RedisUrl::parse(seed, accept_invalid_certs))
            .collect::<Result<Vec<_>, _>>()?;
        let passwords: Vec<String> = targets.iter().filter_map(|t| t.password.clone()).collect();
        let scrub = |mut text: String| {
            for password in &passwords {
                text = scrub_password(text, Some(password));
            }
            text
        };
        let client = ClusterClient::builder(targets.iter().map(|t| t.url.as_str()))
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(response_timeout)
            // MOVED / ASK / TRYAGAIN and a failover's CLUSTERDOWN are retried inside this
            // budget; the limiter's own timeout answers the caller first when it is shorter.
            .retries(6)
            .min_retry_wait(25)
            .max_retry_wait(400)
            .build()
            .map_err(|e| {
                StoreError::InvalidConfig(scrub(format!("invalid Redis Cluster URL: {e}")))
            })?;
        Ok(RedisCluster {
            client,
            display: targets
                .iter()
                .map(|t| t.display.as_str())
                .collect::<Vec<_>>()
                .join(","),
            passwords,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    fn cached_connection(&self) -> Option<ClusterConnection> {
        self.connection.lock().ok().and_then(|guard| guard.clone())
    }

    /// The cluster connection, opened on first use (one opener at a time).
    async fn connection(&self) -> Result<ClusterConnection, Attempt> {
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let conn = self.client.get_async_connection().await.map_err(|e| {
            // As for one server: waiting helps a cluster that is down or restarting, not a
            // refused password or a certificate that does not verify.
            let not_run = (e.is_connection_refusal() || e.is_timeout() || e.is_io_error())
                && !is_tls_failure(&e);
            let err = self.error("could not connect", &e);
            if not_run {
                Attempt::NotRun(err)
            } else {
                Attempt::Failed(err)
            }
        })?;
        if let Ok(mut guard) = self.connection.lock() {
            *guard = Some(conn.clone());
        }
        Ok(conn)
    }

    /// Sends one batch: every command to its slot's node, all at once; per-command errors come
    /// back as items. The batch fails as a whole only when none of it was sent.
    pub(crate) async fn send(
        &self,
        commands: &[&Command],
        as_eval: bool,
    ) -> Result<Vec<Result<Reply, StoreError>>, Attempt> {
        let conn = self.connection().await?;
        let cmds: Vec<Cmd> = commands
            .iter()
            .map(|command| {
                command.with_parts(as_eval, true, |parts| {
                    let bytes = parts.iter().map(|part| part.len()).sum();
                    let mut cmd = Cmd::with_capacity(parts.len(), bytes);
                    for part in parts {
                        cmd.arg(*part);
                    }
                    cmd
                })
            })
            .collect();
        let replies = join_all(cmds.iter().map(|cmd| {
            let mut conn = conn.clone();
            async move { conn.req_packed_command(cmd).await }
        }))
        .await;
        if !replies.is_empty()
            && replies
                .iter()
                .all(|reply| matches!(reply, Err(e) if never_sent(e)))
        {
            let err = match replies.into_iter().next() {
                Some(Err(e)) => self.error("could not connect", &e),
                _ => StoreError::Internal("empty batch".into()),
            };
            return Err(Attempt::NotRun(err));
        }
        Ok(replies
            .into_iter()
            .map(|reply| match reply {
                Ok(value) => reply_of(value),
                Err(e) => Err(self.item_error(&e)),
            })
            .collect())
    }

    /// A command's error as its item: what Redis answered (`NOSCRIPT …`, `ERR …`, `OOM …`), or
    /// the transport's failure.
    fn item_error(&self, err: &RedisError) -> StoreError {
        match err.code() {
            Some(code) => StoreError::Redis(self.scrub(match err.detail() {
                Some(detail) => format!("{code} {detail}"),
                None => code.to_string(),
            })),
            None if err.is_timeout() => self.error("timed out", err),
            None => self.error("failed", err),
        }
    }

    fn error(&self, what: &str, err: &RedisError) -> StoreError {
        StoreError::Transport(self.scrub(format!(
            "request to Redis Cluster at {} {what}: {err}",
            self.display
        )))
    }

    fn scrub(&self, mut text: String) -> String {
        for password in &self.passwords {
            text = scrub_password(text, Some(password));
        }
        text
    }
}
