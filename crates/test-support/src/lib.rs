//! Real servers for `cargo test`: a throwaway `redis-server` (random free port, a random
//! password, `--save '' --appendonly no`, its own temp dir) and the local Upstash REST server in
//! front of it. Both stop when their handle is dropped, also when a test panics.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use upstash_rest_server::{RunningServer, ServerConfig};

/// A redis-server child process, killed and its directory removed on drop.
pub struct RedisServer {
    pub port: u16,
    pub password: String,
    dir: PathBuf,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", std::process::id())
}

impl RedisServer {
    /// Starts redis-server and waits (at most 5 s per attempt) until it answers PING.
    pub fn start() -> RedisServer {
        for _attempt in 0..5 {
            let password = format!("pw{}", unique_suffix().replace('-', ""));
            if let Some(server) = Self::try_start(free_port(), &password) {
                return server;
            }
        }
        panic!("could not start redis-server");
    }

    /// Starts redis-server on a given port and password (a "restart" of a stopped one).
    pub fn start_on(port: u16, password: &str) -> RedisServer {
        for _attempt in 0..5 {
            if let Some(server) = Self::try_start(port, password) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not start redis-server on port {port}");
    }

    fn try_start(port: u16, password: &str) -> Option<RedisServer> {
        let dir = std::env::temp_dir().join(format!("rln-redis-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--requirepass",
                password,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (npm test installs it)");
        let mut server = RedisServer {
            port,
            password: password.to_string(),
            dir,
            child,
        };
        // Dropping `server` on failure kills it.
        server.wait_ready(Duration::from_secs(5)).then_some(server)
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(300))
                {
                    if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        false
    }

    /// `redis://:password@127.0.0.1:port`
    pub fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}", self.password, self.port)
    }

    /// A direct connection, for asserting on Redis state.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }

    /// Calls per command so far (`INFO commandstats`), e.g. `{"evalsha": 3, "eval": 1}`.
    pub async fn commandstats(&self) -> HashMap<String, u64> {
        let mut conn = self.connection().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO");
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(":calls=")?;
                Some((name.to_string(), rest.split(',').next()?.parse().ok()?))
            })
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The REST server running in-process in front of a [`RedisServer`].
pub struct RestStack {
    pub redis: RedisServer,
    pub url: String,
    pub token: String,
    server: Option<RunningServer>,
}

impl RestStack {
    /// Starts redis-server and the REST server (port 0) on the current tokio runtime.
    pub async fn start() -> RestStack {
        Self::start_with(|_| {}).await
    }

    /// Like [`RestStack::start`], letting the test adjust the server config first.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> RestStack {
        let redis = RedisServer::start();
        let token = format!("tok{}", unique_suffix().replace('-', ""));
        let mut config = ServerConfig::new(redis.url(), token.clone());
        adjust(&mut config);
        let server = upstash_rest_server::start(config)
            .await
            .expect("start the REST server");
        RestStack {
            url: server.url(),
            token,
            redis,
            server: Some(server),
        }
    }

    /// Requests and commands the REST server has served so far.
    pub fn stats(&self) -> upstash_rest_server::ServerStats {
        self.server
            .as_ref()
            .map(|s| s.stats())
            .unwrap_or(upstash_rest_server::ServerStats {
                requests: 0,
                commands: 0,
            })
    }

    /// Stops the REST server gracefully (redis stops on drop).
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}
