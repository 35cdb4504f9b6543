use std::time::Duration;

use clap::Parser;

use crate::error::StartError;

/// Everything the server needs; the CLI (`upstash-rest-server`, `npx ratelimit-native serve`)
/// builds it from flags and environment variables.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ratelimit-native serve",
    about = "A local Upstash Redis REST server in front of a real redis-server",
    long_about = None
)]
pub struct ServerConfig {
    /// Address to bind; loopback unless you ask otherwise.
    #[arg(long, env = "UPSTASH_LOCAL_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on; 0 picks a free port (the chosen URL is printed).
    #[arg(long, env = "UPSTASH_LOCAL_PORT", default_value_t = 8079)]
    pub port: u16,

    /// Redis to forward to, e.g. redis://:password@127.0.0.1:6379 (never printed with its password).
    #[arg(
        long = "redis",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// Bearer token clients must send (what UPSTASH_REDIS_REST_TOKEN holds on the client side).
    #[arg(long, env = "UPSTASH_REDIS_REST_TOKEN", hide_env_values = true)]
    pub token: String,

    /// Path prefix the API lives under, e.g. /redis.
    #[arg(long, env = "UPSTASH_LOCAL_BASE_PATH", default_value = "/")]
    pub base_path: String,

    /// Largest accepted request body; larger bodies get 413.
    #[arg(long, env = "UPSTASH_LOCAL_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long to wait for Redis to answer one request before replying 504.
    #[arg(long, env = "UPSTASH_LOCAL_REDIS_TIMEOUT_MS", default_value_t = 30_000)]
    pub redis_timeout_ms: u64,
}

impl ServerConfig {
    /// A config for tests and embedding: loopback, a free port, defaults elsewhere.
    pub fn new(redis_url: impl Into<String>, token: impl Into<String>) -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            redis_url: redis_url.into(),
            token: token.into(),
            base_path: "/".into(),
            max_body_bytes: 10 * 1024 * 1024,
            redis_timeout_ms: 30_000,
        }
    }

    /// Parses CLI arguments (without the program name); `--help` comes back as an error whose
    /// text is the help.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once(std::ffi::OsString::from("ratelimit-native serve"))
            .chain(args.into_iter().map(Into::into));
        ServerConfig::try_parse_from(argv)
    }

    pub(crate) fn validate(&self) -> Result<(), StartError> {
        if self.token.is_empty() {
            return Err(StartError::Config(
                "the token must not be empty (--token or UPSTASH_REDIS_REST_TOKEN)".into(),
            ));
        }
        if !self.base_path.starts_with('/') {
            return Err(StartError::Config(format!(
                "the base path must start with '/', got {:?}",
                self.base_path
            )));
        }
        if self.max_body_bytes == 0 {
            return Err(StartError::Config("max body bytes must be positive".into()));
        }
        Ok(())
    }

    /// Base path without a trailing slash ("" for the root).
    pub(crate) fn normalized_base_path(&self) -> String {
        self.base_path.trim_end_matches('/').to_string()
    }

    pub(crate) fn redis_timeout(&self) -> Option<Duration> {
        (self.redis_timeout_ms > 0).then(|| Duration::from_millis(self.redis_timeout_ms))
    }

    /// The Redis address without credentials, for log lines.
    pub fn redis_display(&self) -> String {
        match redis::IntoConnectionInfo::into_connection_info(self.redis_url.as_str()) {
            Ok(info) => format!("{}", info.addr()),
            Err(_) => "<invalid redis url>".into(),
        }
    }
}
