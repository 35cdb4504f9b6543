//! One batch as one `POST {url}/pipeline` to an Upstash REST endpoint: the body is written
//! straight from the commands, the answer is decoded from `Upstash-Encoding: base64`, and no
//! error text ever carries the token.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use ratelimit_core::pipeline::{answer_items, scrub, write_body, Attempt, Command};
use ratelimit_core::reply::{Reply, StoreError};

pub(crate) struct RestTransport {
    http: reqwest::Client,
    /// Parsed once: reqwest parses a text URL on every request (with IDNA host checks), about
    /// as much work as building the whole pipeline body.
    pipeline_url: reqwest::Url,
    /// Host and port only: what error messages may show.
    display_host: String,
    /// Kept only to scrub it from anything a server echoes back into an error.
    token: String,
    headers: HeaderMap,
}

impl RestTransport {
    pub(crate) fn new(
        url: &str,
        token: &str,
        request_timeout: Duration,
        accept_invalid_certs: bool,
    ) -> Result<Self, StoreError> {
        let parsed = parse_endpoint(url, token, &["http", "https"])?;
        let display_host = match (parsed.host_str(), parsed.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => "<no host>".into(),
        };
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            StoreError::InvalidConfig("the Upstash REST token contains invalid characters".into())
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("upstash-encoding", HeaderValue::from_static("base64"));
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .timeout(request_timeout)
            .tls_danger_accept_invalid_certs(accept_invalid_certs)
            .build()
            .map_err(|e| StoreError::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        let base = url.trim_end_matches('/');
        let pipeline_url = reqwest::Url::parse(&format!("{base}/pipeline"))
            .map_err(|e| StoreError::InvalidConfig(format!("invalid Upstash REST URL: {e}")))?;
        Ok(RestTransport {
            http,
            pipeline_url,
            display_host,
            token: token.to_string(),
            headers,
        })
    }

    /// POSTs one pipeline once; a transport or HTTP-level failure fails every item.
    pub(crate) async fn send(
        &self,
        commands: &[&Command],
        as_eval: bool,
    ) -> Result<Vec<Result<Reply, StoreError>>, Attempt> {
        let body = write_body(commands, as_eval).map_err(Attempt::Failed)?;
        let response = self
            .http
            .post(self.pipeline_url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if connection_refused(&e) {
                    Attempt::NotRun(self.transport_error(e))
                } else {
                    Attempt::Failed(self.transport_error(e))
                }
            })?;
        let status = response.status().as_u16();
        let text = response
            .bytes()
            .await
            .map_err(|e| Attempt::Failed(self.transport_error(e)))?;
        answer_items(status, &text, &self.token)
    }

    fn transport_error(&self, err: reqwest::Error) -> StoreError {
        let kind = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "could not connect"
        } else {
            "failed"
        };
        // `without_url` keeps credentials that might sit in the URL out of the message; the
        // causes say what actually happened (e.g. an invalid certificate, a reset connection).
        let err = err.without_url();
        let mut message = format!("request to {} {kind}: {err}", self.display_host);
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        StoreError::Transport(scrub(message, &self.token))
    }
}

/// The endpoint's URL, if its scheme is one of `schemes`, with the token checked not to be
/// empty. Shared by both REST transports.
pub(crate) fn parse_endpoint(
    url: &str,
    token: &str,
    schemes: &[&str],
) -> Result<reqwest::Url, StoreError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| StoreError::InvalidConfig(format!("invalid Upstash REST URL: {e}")))?;
    if !schemes.contains(&parsed.scheme()) {
        let allowed: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(StoreError::InvalidConfig(format!(
            "the Upstash REST URL must start with {}, got scheme {:?}",
            allowed.join(" or "),
            parsed.scheme()
        )));
    }
    if token.is_empty() {
        return Err(StoreError::InvalidConfig(
            "the Upstash REST token is empty".into(),
        ));
    }
    Ok(parsed)
}

/// Whether the connection was refused (nothing listening yet, e.g. a server restarting): the
/// only transport failure after which the request certainly did not run and is worth resending.
/// A TLS failure is also a "connect" error, but resending cannot fix a certificate.
fn connection_refused(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotConnected
            );
        }
        source = cause.source();
    }
    false
}
