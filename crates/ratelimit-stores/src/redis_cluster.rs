//! One batch on a Redis Cluster: every command routed to the master that serves its key's slot
//! (redis-rs' cluster connection: topology discovered from the seed nodes, slots refreshed after
//! a redirect or a lost node). The batch's commands are written at once, so each node's
//! multiplexed connection carries its share as one pipeline on the wire; their answers come back
//! as items, in order. Redirections (MOVED / ASK / TRYAGAIN) and a failover's refusals are
//! resent here, not inside redis-rs (see `new`).
//!
//! A script's keys must all live in one slot: the JS facade gives every key of one identifier
//! the hash tag `{identifier}` on a cluster (see keys in docs/ARCHITECTURE.md), and sends keys
//! of other slots (dynamic limits, analytics, deny lists) as commands of their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, RedisResult, Value};

use crate::redis_tcp::{
    cmd_of, connect_failure, never_sent, reply_of, scrub_passwords, RedisUrl, CONNECT_TIMEOUT,
};
use ratelimit_core::pipeline::{Attempt, Command};
use ratelimit_core::reply::{Reply, StoreError};

pub(crate) struct RedisCluster {
    client: ClusterClient,
    /// The seed nodes' `host:port`: what error messages may show.
    display: String,
    /// Kept only to scrub them from error texts.
    passwords: Vec<String>,
    /// The connection, with a number that changes when it is replaced.
    connection: Mutex<Option<(u64, ClusterConnection)>>,
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    response_timeout: Duration,
}

/// One command's outcome in a batch: its answer, or none within the time allowed.
enum Answer {
    Got(RedisResult<Value>),
    Hung,
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
        let scrub = |text: String| scrub_passwords(text, &passwords);
        let client = ClusterClient::builder(targets.iter().map(|t| t.url.as_str()))
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(response_timeout)
            // No retries inside redis-rs: with them, some calls redirected during a slot
            // migration never answered (in each of three test runs, until the limiter's 10 s
            // timeout). A MOVED / ASK / TRYAGAIN / CLUSTERDOWN answer still makes it refresh its
            // slots, and `send` resends what did not run, on the store's schedule.
            .retries(0)
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
            generation: AtomicU64::new(0),
            response_timeout,
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    fn cached_connection(&self) -> Option<(u64, ClusterConnection)> {
        self.connection.lock().ok().and_then(|guard| guard.clone())
    }

    /// The cluster connection, opened on first use (one opener at a time).
    async fn connection(&self) -> Result<(u64, ClusterConnection), Attempt> {
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let conn = self.client.get_async_connection().await.map_err(|e| {
            // As for one server, and the seed nodes' refusals seen through redis-rs' text.
            let err = self.error("could not connect", &e);
            if refused_for_good(&e) {
                Attempt::Failed(err)
            } else {
                connect_failure(&e, err)
            }
        })?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut guard) = self.connection.lock() {
            *guard = Some((generation, conn.clone()));
        }
        Ok((generation, conn))
    }

    /// Drops the connection numbered `stale` (unless another batch already replaced it): the
    /// next batch opens a new one.
    fn forget(&self, stale: u64) {
        if let Ok(mut guard) = self.connection.lock() {
            if guard
                .as_ref()
                .is_some_and(|(generation, _)| *generation == stale)
            {
                *guard = None;
            }
        }
    }

    /// Sends one batch: every command to its slot's node, all at once; per-command errors come
    /// back as items. Commands that certainly did not run (their node refused the connection,
    /// or the cluster answered CLUSTERDOWN / TRYAGAIN / MASTERDOWN while a failover or a slot
    /// migration settles) are sent again on the store's schedule — until `retry_until` when
    /// every caller has a deadline — so a failover shorter than the limiter's timeout reaches
    /// no caller as an error.
    pub(crate) async fn send(
        &self,
        commands: &[&Command],
        as_eval: bool,
        retry_until: Option<Instant>,
    ) -> Result<Vec<Result<Reply, StoreError>>, Attempt> {
        let (mut generation, mut conn) = self.connection().await?;
        let cmds: Vec<Cmd> = commands
            .iter()
            .map(|command| command.with_parts(as_eval, true, cmd_of))
            .collect();
        let mut replies: Vec<Answer> = (0..cmds.len()).map(|_| Answer::Hung).collect();
        let mut todo: Vec<usize> = (0..cmds.len()).collect();
        let mut attempt = 0;
        loop {
            // No answer is awaited past the callers' deadline (or the response timeout): a
            // connection whose recovery got stuck must not hold the store's batches forever.
            let wait = retry_until.map_or(self.response_timeout, |until| {
                until
                    .saturating_duration_since(Instant::now())
                    .min(self.response_timeout)
                    + Duration::from_millis(20)
            });
            let answers = join_all(todo.iter().map(|&i| {
                let mut conn = conn.clone();
                let cmd = &cmds[i];
                async move {
                    match tokio::time::timeout(wait, conn.req_packed_command(cmd)).await {
                        Ok(answer) => Answer::Got(answer),
                        Err(_) => Answer::Hung,
                    }
                }
            }))
            .await;
            let mut again = Vec::new();
            let mut stale = false;
            for (i, answer) in todo.iter().copied().zip(answers) {
                match &answer {
                    Answer::Hung => stale = true,
                    Answer::Got(Err(e)) if did_not_run(e) => {
                        stale |= e.code() == Some("MOVED");
                        again.push(i);
                    }
                    Answer::Got(_) => {}
                }
                replies[i] = answer;
            }
            if stale {
                // A MOVED: redis-rs' slot map was stale, and after a master was killed it did not
                // always recover from that (every later call waited out its timeout); or no
                // answer came while it recovered. Later batches start over from the seed nodes'
                // view of the topology.
                self.forget(generation);
            }
            let Some(delay) = crate::remote::resend_delay(attempt, retry_until) else {
                break;
            };
            if again.is_empty() {
                break;
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
            todo = again;
            if stale {
                (generation, conn) = self.connection().await?;
            }
        }
        if !replies.is_empty()
            && replies
                .iter()
                .all(|reply| matches!(reply, Answer::Got(Err(e)) if never_sent(e)))
        {
            let err = match replies.into_iter().next() {
                Some(Answer::Got(Err(e))) => self.error("could not connect", &e),
                _ => StoreError::Internal("empty batch".into()),
            };
            return Err(Attempt::NotRun(err));
        }
        Ok(replies
            .into_iter()
            .map(|reply| match reply {
                Answer::Got(Ok(value)) => reply_of(value),
                Answer::Got(Err(e)) => Err(self.item_error(&e)),
                Answer::Hung => Err(StoreError::Transport(format!(
                    "request to Redis Cluster at {} timed out",
                    self.display
                ))),
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

    fn scrub(&self, text: String) -> String {
        scrub_passwords(text, &self.passwords)
    }
}

/// Whether a command's failure shows it never ran: its node could not be reached, or the
/// cluster refused it while it reconfigures (a failover, a slot in migration): MOVED / ASK /
/// TRYAGAIN come here, since redis-rs does not resend. READONLY: a demoted master refused the
/// script's first write.
fn did_not_run(err: &RedisError) -> bool {
    never_sent(err)
        || matches!(
            err.code(),
            Some("CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN" | "MOVED" | "ASK" | "READONLY")
        )
}

/// Whether opening the cluster connection failed for a reason waiting does not fix: a refused
/// password or a certificate that does not verify. redis-rs reports the seed nodes' failures
/// as one I/O error whose detail is the last node's error as text, so the text is what is left
/// to look at.
fn refused_for_good(err: &RedisError) -> bool {
    let detail = err.detail().unwrap_or_default();
    err.kind() == redis::ErrorKind::AuthenticationFailed
        || [
            "AuthenticationFailed",
            "WRONGPASS",
            "NOAUTH",
            "certificate",
            "Certificate",
        ]
        .iter()
        .any(|mark| detail.contains(mark))
}
