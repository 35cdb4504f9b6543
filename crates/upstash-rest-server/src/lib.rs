//! A local server that speaks the Upstash Redis REST protocol in front of a real `redis-server`.
//!
//! Tests, benchmarks and users' local development point `@upstash/redis` (or ratelimit-native's
//! own REST client) at it instead of an Upstash database. It follows the wire protocol exactly
//! (JSON bodies, `/pipeline`, `/multi-exec`, `Upstash-Encoding: base64`, verbatim Redis errors)
//! and strips the Upstash-only `allow-key-locking` script flag that stock Redis rejects.

mod args;
mod config;
mod encoding;
mod error;
mod executor;
mod http;
mod scripts;
mod timer_anchor;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::ServerConfig;
pub use error::StartError;
pub use scripts::strip_key_locking;

/// Request counters of a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    pub requests: u64,
    pub commands: u64,
}

/// A server started by [`start`]; dropping it does not stop the server, call [`RunningServer::stop`].
pub struct RunningServer {
    local_addr: SocketAddr,
    stats: Arc<http::Stats>,
    base_path: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// The address the server is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Command requests served so far (`/`, `/pipeline` and `/multi-exec` bodies that passed
    /// authentication and parsing) and the Redis commands they carried.
    pub fn stats(&self) -> ServerStats {
        use std::sync::atomic::Ordering::Relaxed;
        ServerStats {
            requests: self.stats.requests.load(Relaxed),
            commands: self.stats.commands.load(Relaxed),
        }
    }

    /// The base URL clients should use, e.g. `http://127.0.0.1:43123`.
    pub fn url(&self) -> String {
        format!(
            "http://{}{}",
            self.local_addr,
            self.base_path.trim_end_matches('/')
        )
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops by itself (it only does on a fatal accept error).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds the listener and starts serving on the current tokio runtime.
///
/// Redis is connected lazily: the server starts even when Redis is down, and answers
/// `502 {"error":"…"}` until Redis becomes reachable.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|source| StartError::Bind {
            addr: format!("{}:{}", config.host, config.port),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: format!("{}:{}", config.host, config.port),
        source,
    })?;
    let base_path = config.normalized_base_path();
    let executor = executor::Executor::new(&config)?;
    let anchor = timer_anchor::start(config.redis_timeout());
    let state = Arc::new(http::AppState::new(config, executor));
    let stats = state.stats.clone();
    let app = http::router(state);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Some(anchor) = anchor {
            anchor.abort();
        }
        if let Err(err) = served {
            eprintln!("upstash-rest-server stopped: {err}");
        }
    });
    Ok(RunningServer {
        local_addr,
        stats,
        base_path,
        shutdown: Some(tx),
        task,
    })
}
