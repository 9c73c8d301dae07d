//! Where downloads come from: [`DefaultSource`] speaks `https://` and `http://` (hyper, rustls with
//! the ring provider, the system trust store) and `file://` (the offline seam used by tests and by
//! air-gapped mirrors).

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;

/// Largest download accepted (the biggest pinned artifact, kubectl, is ~60 MB).
pub const MAX_DOWNLOAD_BYTES: usize = 512 * 1024 * 1024;
/// Redirects followed (GitHub release assets redirect once or twice).
const MAX_REDIRECTS: usize = 10;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL is malformed or uses an unsupported scheme.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The server answered with a non-success status.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// Connecting, TLS, reading or the local file failed.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// The cause, as text.
        reason: String,
    },
    /// The download did not finish in time.
    #[error("{url}: no complete answer within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
}

/// Fetches the bytes behind a URL. Blocking.
pub trait Source {
    /// The complete body of `url`.
    fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError>;
}

/// HTTP(S) via hyper + rustls (ring provider only), and `file://`.
///
/// Blocking: it owns a current-thread tokio runtime, so do not call it from inside an async task
/// (use `tokio::task::spawn_blocking`).
#[derive(Debug)]
pub struct DefaultSource {
    timeout: Duration,
}

impl Default for DefaultSource {
    fn default() -> Self {
        DefaultSource { timeout: Duration::from_secs(600) }
    }
}

impl DefaultSource {
    /// A source whose every download must finish within `timeout`.
    #[must_use]
    pub fn with_timeout(timeout: Duration) -> Self {
        DefaultSource { timeout }
    }
}

impl Source for DefaultSource {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        if let Some(path) = url.strip_prefix("file://") {
            return std::fs::read(path).map_err(|e| FetchError::Transport { url: url.into(), reason: e.to_string() });
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(FetchError::BadUrl {
                url: url.into(),
                reason: "only https://, http:// and file:// are supported".into(),
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| FetchError::Transport { url: url.into(), reason: e.to_string() })?;
        runtime.block_on(async {
            tokio::time::timeout(self.timeout, get_following_redirects(url))
                .await
                .map_err(|_| FetchError::Timeout { url: url.into(), timeout: self.timeout })?
        })
    }
}

async fn get_following_redirects(url: &str) -> Result<Vec<u8>, FetchError> {
    let transport = |reason: String| FetchError::Transport { url: url.into(), reason };
    let provider = rustls::crypto::ring::default_provider();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| transport(format!("TLS setup: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(https);
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let uri: hyper::Uri =
            current.parse().map_err(|e| FetchError::BadUrl { url: current.clone(), reason: format!("{e}") })?;
        let request = hyper::Request::get(uri.clone())
            .header(hyper::header::USER_AGENT, concat!("kyvtel/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| transport(e.to_string()))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| FetchError::Transport { url: current.clone(), reason: error_chain(&e) })?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::Status { url: current.clone(), status: status.as_u16() })?;
            current = join_location(&uri, location);
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Status { url: current, status: status.as_u16() });
        }
        let body = Limited::new(response.into_body(), MAX_DOWNLOAD_BYTES)
            .collect()
            .await
            .map_err(|e| FetchError::Transport { url: current.clone(), reason: e.to_string() })?;
        return Ok(body.to_bytes().to_vec());
    }
    Err(transport(format!("more than {MAX_REDIRECTS} redirects")))
}

/// Resolves a `Location` header against the URI it answered.
fn join_location(base: &hyper::Uri, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map_or("", |a| a.as_str());
    if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        format!("{scheme}://{authority}{dir}/{location}")
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_base() {
        let base: hyper::Uri = "https://h.example/a/b/file".parse().unwrap();
        assert_eq!(join_location(&base, "https://cdn.example/x"), "https://cdn.example/x");
        assert_eq!(join_location(&base, "/x/y"), "https://h.example/x/y");
        assert_eq!(join_location(&base, "y"), "https://h.example/a/b/y");
    }

    #[test]
    fn unsupported_scheme_is_rejected() {
        let err = DefaultSource::default().fetch("ftp://x/y").unwrap_err();
        assert!(matches!(err, FetchError::BadUrl { .. }), "{err}");
    }
}
