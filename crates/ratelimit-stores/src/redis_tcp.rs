//! One batch as one RESP pipeline to a Redis server over TCP: no REST hop, so a self-hosted
//! Redis answers in one loopback round trip. One multiplexed connection per store (redis-rs'
//! `ConnectionManager`: opened on first use, reconnected by itself), so concurrent batches are
//! pipelined on the wire too; `rediss://` connects over TLS (rustls). Scripts are sent without
//! Upstash's key-locking line, which stock Redis rejects; keys and arguments are the same as on
//! the REST path, so both can share one database.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, TlsMode, Value};

use ratelimit_core::pipeline::{Attempt, Command};
use ratelimit_core::reply::{Reply, StoreError};

/// How long opening a connection may take before the batch fails (then it is retried on the
/// store's schedule, because nothing was sent).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A `redis://` / `rediss://` URL checked, with what errors may show of it.
pub(crate) struct RedisUrl {
    /// What redis-rs is given (with `#insecure` when certificates are not verified).
    pub(crate) url: String,
    /// `host:port` only: what error messages may show.
    pub(crate) display: String,
    /// Kept only to scrub it from error texts.
    pub(crate) password: Option<String>,
}

impl RedisUrl {
    /// `accept_invalid_certs`: a rediss:// connection does not verify the server's certificate
    /// (`tls: { rejectUnauthorized: false }`, for a self-signed local server).
    pub(crate) fn parse(url: &str, accept_invalid_certs: bool) -> Result<Self, StoreError> {
        let mut parsed = reqwest::Url::parse(url).map_err(|_| {
            StoreError::InvalidConfig(
                "invalid Redis URL; expected redis://[user][:password@]host[:port][/db]".into(),
            )
        })?;
        match parsed.scheme() {
            "redis" => {}
            // TLS through rustls (the process's ring provider, as on the REST path), trusting
            // the system's certificate store (SSL_CERT_FILE / SSL_CERT_DIR name others).
            "rediss" => crate::tls::install_crypto_provider(),
            other => {
                return Err(StoreError::InvalidConfig(format!(
                    "a Redis URL must start with redis:// or rediss://, got scheme {other:?}"
                )))
            }
        }
        let host = parsed.host_str().unwrap_or_default();
        if host.is_empty() {
            return Err(StoreError::InvalidConfig(
                "the Redis URL has no host".into(),
            ));
        }
        let display = format!("{host}:{}", parsed.port().unwrap_or(6379));
        let password = parsed
            .password()
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        if parsed.scheme() == "rediss" && accept_invalid_certs {
            parsed.set_fragment(Some("insecure")); // redis-rs' spelling of it
        }
        Ok(RedisUrl {
            url: parsed.into(),
            display,
            password,
        })
    }

    /// `text` without the password.
    pub(crate) fn scrub(&self, text: String) -> String {
        scrub_passwords(text, self.password.as_slice())
    }
}

/// `text` with every one of `passwords` replaced: errors never show secrets.
pub(crate) fn scrub_passwords(mut text: String, passwords: &[String]) -> String {
    for password in passwords {
        text = text.replace(password.as_str(), "[redacted]");
    }
    text
}

/// A store command as redis-rs' `Cmd`. Sized up front: growing the buffers argument by
/// argument was a tenth of the runtime thread's time (realloc) at c=64.
pub(crate) fn cmd_of(parts: &[&str]) -> Cmd {
    let bytes = parts.iter().map(|part| part.len()).sum();
    let mut cmd = Cmd::with_capacity(parts.len(), bytes);
    for part in parts {
        cmd.arg(*part);
    }
    cmd
}

/// A failure to open a connection as an attempt. Nothing was sent yet: a server that is down or
/// restarting is worth waiting for (`NotRun`); a refused password, a bad database number or a
/// certificate that does not verify is not.
pub(crate) fn connect_failure(e: &RedisError, err: StoreError) -> Attempt {
    if (e.is_connection_refusal() || e.is_timeout() || e.is_io_error()) && !is_tls_failure(e) {
        Attempt::NotRun(err)
    } else {
        Attempt::Failed(err)
    }
}

/// Where the connection goes.
enum Source {
    /// One server.
    Server(redis::Client),
    /// Whichever server a group of sentinels names the master of a group: asked again whenever
    /// the connection is lost or the server turns out to be a replica (after a failover).
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

pub(crate) struct RedisTcp {
    source: Source,
    /// `host:port` only: what error messages may show.
    display: String,
    /// Kept only to scrub them from error texts.
    passwords: Vec<String>,
    response_timeout: Duration,
    connection: Mutex<Option<ConnectionManager>>,
    connecting: tokio::sync::Mutex<()>,
}

impl RedisTcp {
    /// `accept_invalid_certs`: a rediss:// connection does not verify the server's certificate
    /// (`tls: { rejectUnauthorized: false }`, for a self-signed local server).
    pub(crate) fn new(
        url: &str,
        response_timeout: Duration,
        accept_invalid_certs: bool,
    ) -> Result<Self, StoreError> {
        let target = RedisUrl::parse(url, accept_invalid_certs)?;
        let client = redis::Client::open(target.url.as_str()).map_err(|e| {
            StoreError::InvalidConfig(target.scrub(format!("invalid Redis URL: {e}")))
        })?;
        Ok(RedisTcp {
            source: Source::Server(client),
            display: target.display,
            passwords: target.password.into_iter().collect(),
            response_timeout,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// A store on the master of the sentinels' group `name`. `sentinels`: redis:// URLs of
    /// sentinels (a password there is the sentinels' own); `master`: a redis:// or rediss://
    /// URL whose user, password and database are used on the master (its host is ignored).
    pub(crate) fn sentinel(
        sentinels: &[String],
        name: &str,
        master: &str,
        response_timeout: Duration,
        accept_invalid_certs: bool,
    ) -> Result<Self, StoreError> {
        if sentinels.is_empty() || name.is_empty() {
            return Err(StoreError::InvalidConfig(
                "Redis Sentinel needs at least one sentinel and the name of the master group"
                    .into(),
            ));
        }
        let targets = sentinels
            .iter()
            .map(|url| RedisUrl::parse(url, accept_invalid_certs))
            .collect::<Result<Vec<_>, _>>()?;
        let master_target = RedisUrl::parse(master, accept_invalid_certs)?;
        let mut passwords: Vec<String> =
            targets.iter().filter_map(|t| t.password.clone()).collect();
        passwords.extend(master_target.password.clone());
        let scrub = |text: String| scrub_passwords(text, &passwords);
        let master_info = master_target
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| StoreError::InvalidConfig(scrub(format!("invalid Redis URL: {e}"))))?;
        let mut node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(master_info.redis_settings().clone());
        if master_target.url.starts_with("rediss:") {
            node = node.set_tls_mode(if accept_invalid_certs {
                TlsMode::Insecure
            } else {
                TlsMode::Secure
            });
        }
        let client = SentinelClient::build(
            targets.iter().map(|t| t.url.as_str()).collect(),
            name,
            Some(node),
            SentinelServerType::Master,
        )
        .map_err(|e| StoreError::InvalidConfig(scrub(format!("invalid sentinel settings: {e}"))))?;
        Ok(RedisTcp {
            source: Source::Sentinel(tokio::sync::Mutex::new(client)),
            display: format!(
                "master {name:?} via sentinels {}",
                targets
                    .iter()
                    .map(|t| t.display.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            passwords,
            response_timeout,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// Drops the connection of a sentinel store, so the next batch asks the sentinels where
    /// the master is now. (A single server's connection reconnects by itself.)
    fn forget_master(&self) {
        if matches!(self.source, Source::Sentinel(_)) {
            if let Ok(mut guard) = self.connection.lock() {
                *guard = None;
            }
        }
    }

    fn cached_connection(&self) -> Option<ConnectionManager> {
        self.connection.lock().ok().and_then(|guard| guard.clone())
    }

    /// The store's connection, opened on first use (one opener at a time).
    async fn connection(&self) -> Result<ConnectionManager, Attempt> {
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(conn) = self.cached_connection() {
            return Ok(conn);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let client = match &self.source {
            Source::Server(client) => client.clone(),
            Source::Sentinel(sentinel) => {
                sentinel
                    .lock()
                    .await
                    .async_get_client()
                    .await
                    .map_err(|e| {
                        // No sentinel answered, or none knows a master (a failover under way):
                        // worth waiting for; a refused password is not.
                        let err = self.error("could not find the master", &e);
                        if e.kind() == redis::ErrorKind::AuthenticationFailed
                            || e.to_string().contains("WRONGPASS")
                        {
                            Attempt::Failed(err)
                        } else {
                            Attempt::NotRun(err)
                        }
                    })?
            }
        };
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| connect_failure(&e, self.error("could not connect", &e)))?;
        if let Ok(mut guard) = self.connection.lock() {
            *guard = Some(conn.clone());
        }
        Ok(conn)
    }

    /// Sends one batch as one pipeline; per-command errors come back as items.
    pub(crate) async fn send(
        &self,
        commands: &[&Command],
        as_eval: bool,
    ) -> Result<Vec<Result<Reply, StoreError>>, Attempt> {
        let mut pipe = Pipeline::with_capacity(commands.len());
        for command in commands {
            pipe.add_command(command.with_parts(as_eval, true, cmd_of));
        }
        pipe.ignore_errors();
        let mut conn = self.connection().await?;
        let reply: Value = pipe.query_async(&mut conn).await.map_err(|e| {
            self.forget_master();
            if never_sent(&e) {
                Attempt::NotRun(self.error("could not connect", &e))
            } else if e.is_timeout() {
                Attempt::Failed(self.error("timed out", &e))
            } else {
                Attempt::Failed(self.error("failed", &e))
            }
        })?;
        match reply {
            Value::Array(values) if values.len() == commands.len() => {
                if matches!(self.source, Source::Sentinel(_)) && values.iter().any(is_readonly) {
                    // The server was demoted to a replica by a failover. Its answers are reads
                    // or writes it refused (a script fails at its first write), so the whole
                    // batch is sent again, to the master the sentinels name now.
                    self.forget_master();
                    return Err(Attempt::NotRun(StoreError::Transport(format!(
                        "request to Redis {} reached a replica",
                        self.display
                    ))));
                }
                Ok(values.into_iter().map(reply_of).collect())
            }
            other => Err(Attempt::Failed(StoreError::BadResponse(format!(
                "unexpected pipeline reply from Redis: {}",
                kind_of(&other)
            )))),
        }
    }

    fn error(&self, what: &str, err: &RedisError) -> StoreError {
        let text = format!("request to Redis at {} {what}: {err}", self.display);
        StoreError::Transport(scrub_passwords(text, &self.passwords))
    }
}

/// Whether opening the connection failed in its TLS handshake (a certificate that does not
/// verify, a server that does not speak TLS on that port): waiting does not fix either.
pub(crate) fn is_tls_failure(err: &RedisError) -> bool {
    use std::error::Error as _;
    err.source()
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

/// Whether the batch is safe to send again: the manager is reconnecting to a server that is
/// not back yet (refused), or the connection was found closed (redis-rs reports that as a broken
/// pipe: Redis went away, typically while the connection sat idle, and the batch was never
/// written). This matches the REST path, whose server answers 502 — and the client resends —
/// whenever its own Redis connection fails. A timeout or a reset while waiting for the answer
/// may come after Redis ran the commands: not resent.
pub(crate) fn never_sent(err: &RedisError) -> bool {
    err.is_connection_refusal()
        || matches!(
            io_error_kind(err),
            Some(std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::NotConnected)
        )
}

/// The kind of the I/O error inside a redis-rs error (it keeps it behind an `Arc`).
fn io_error_kind(err: &RedisError) -> Option<std::io::ErrorKind> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let cause = std::error::Error::source(err)?;
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        return Some(io.kind());
    }
    let shared = cause.downcast_ref::<Shared>()?;
    shared
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
}

/// Whether a pipeline item is a replica's refusal to write.
fn is_readonly(value: &Value) -> bool {
    matches!(value, Value::ServerError(err) if err.code() == "READONLY")
}

/// A pipeline item as the stores' common reply type; a Redis error becomes that item's error.
pub(crate) fn reply_of(value: Value) -> Result<Reply, StoreError> {
    Ok(match value {
        Value::Nil => Reply::Nil,
        Value::Int(i) => Reply::Int(i),
        Value::BulkString(bytes) => Reply::Bytes(bytes),
        Value::SimpleString(text) => Reply::Bytes(text.into_bytes()),
        Value::Okay => Reply::Bytes(b"OK".to_vec()),
        Value::Array(items) | Value::Set(items) => {
            Reply::Array(items.into_iter().map(reply_of).collect::<Result<_, _>>()?)
        }
        Value::Map(pairs) => Reply::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [k, v])
                .map(reply_of)
                .collect::<Result<_, _>>()?,
        ),
        Value::Double(d) => Reply::Bytes(d.to_string().into_bytes()),
        Value::Boolean(b) => Reply::Int(i64::from(b)),
        Value::VerbatimString { text, .. } => Reply::Bytes(text.into_bytes()),
        Value::Attribute { data, .. } => reply_of(*data)?,
        Value::ServerError(err) => {
            return Err(StoreError::Redis(match err.details() {
                Some(details) => format!("{} {details}", err.code()),
                None => err.code().to_string(),
            }))
        }
        other => {
            return Err(StoreError::BadResponse(format!(
                "unexpected reply type from Redis: {}",
                kind_of(&other)
            )))
        }
    })
}

/// A reply's type, for error messages (never its contents).
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Int(_) => "integer",
        Value::Array(_) => "array",
        Value::ServerError(_) => "error",
        _ => "other",
    }
}
