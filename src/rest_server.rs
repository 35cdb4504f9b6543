//! `npx ratelimit-native serve` and the test harness start the local Upstash REST server
//! in-process through these functions.

use std::sync::Mutex;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use upstash_rest_server::{RunningServer, ServerConfig};

/// A running local Upstash REST server.
#[napi]
pub struct RestServer {
    url: String,
    port: u32,
    running: Mutex<Option<RunningServer>>,
}

#[napi]
impl RestServer {
    /// Base URL for clients, e.g. `http://127.0.0.1:43123`.
    #[napi(catch_unwind, getter)]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    #[napi(catch_unwind, getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Stops accepting connections and waits for in-flight requests; a second call is a no-op.
    #[napi(catch_unwind)]
    pub async fn stop(&self) -> Result<()> {
        let running = self.running.lock().ok().and_then(|mut guard| guard.take());
        if let Some(running) = running {
            running.stop().await;
        }
        Ok(())
    }
}

/// Starts the server from CLI-style arguments (`["--port", "0", "--token", "t", …]`); flags
/// left out fall back to their environment variables, as on the command line.
#[napi(catch_unwind)]
pub async fn start_rest_server(args: Vec<String>) -> Result<RestServer> {
    let config = ServerConfig::from_args(args)
        .map_err(|e| Error::new(Status::InvalidArg, e.render().to_string()))?;
    let running = upstash_rest_server::start(config)
        .await
        .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
    Ok(RestServer {
        url: running.url(),
        port: u32::from(running.local_addr().port()),
        running: Mutex::new(Some(running)),
    })
}

/// The `serve` command's help text.
#[napi(catch_unwind)]
pub fn rest_server_help() -> String {
    use clap::CommandFactory;
    ServerConfig::command().render_help().to_string()
}
