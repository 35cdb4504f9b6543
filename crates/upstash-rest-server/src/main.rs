//! `upstash-rest-server`: the local Upstash REST server as a standalone binary
//! (the npm package exposes the same thing as `npx ratelimit-native serve`).

use std::process::ExitCode;

use upstash_rest_server::ServerConfig;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match ServerConfig::from_args(std::env::args_os().skip(1)) {
        Ok(config) => config,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let redis = config.redis_display();
    let server = match upstash_rest_server::start(config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("upstash-rest-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {} (redis {redis})", server.url());
    wait_for_shutdown_signal().await;
    server.stop().await;
    ExitCode::SUCCESS
}

async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
