//! Real traffic through the intercept: a local HTTP server that answers with a per-run token, and
//! a minimal HTTP/1.1 client that requests the Service through the Telepresence connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::names::STATUS_MARKER;

/// A running local server; aborted on drop.
#[derive(Debug)]
pub struct Server {
    task: JoinHandle<()>,
    /// The bound port.
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `token` on `127.0.0.1:port` (port 0 picks a free one) to every HTTP request.
pub async fn serve(port: u16, token: String) -> std::io::Result<Server> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { continue };
            let token = token.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // Read the request head (bounded); the answer does not depend on it.
                let _ = timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
                let body = format!("kyvtel-token={token}\n");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(Server { task, port })
}

/// Splits `http://host:port/path` into (host, port, path).
pub fn split_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 80),
    };
    Some((host.to_string(), port, path.to_string()))
}

/// One GET; returns the body.
async fn get_once(url: &str, per_try: Duration) -> Result<String, String> {
    let (host, port, path) = split_url(url).ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let work = async {
        let mut s =
            TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\nuser-agent: kyvtel\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&raw).to_string();
        let status = text.lines().next().unwrap_or_default().to_string();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        if status.contains(" 200 ") { Ok(body) } else { Err(format!("answer `{status}`, body `{}`", body.trim())) }
    };
    timeout(per_try, work).await.map_err(|_| format!("no answer within {per_try:?}"))?
}

/// Requests `url` until the body carries `token`, or `limit` runs out. On failure the error
/// says what the last attempt saw (connection error, another body, ...).
pub async fn expect_token(url: &str, token: &str, limit: Duration) -> Result<(), String> {
    let deadline = crate::duration::tokio_deadline(limit);
    let mut last;
    loop {
        let per_try = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(10));
        last = match get_once(url, per_try).await {
            Ok(body) if body.contains(token) => return Ok(()),
            Ok(body) => format!("answered without the run token (is the intercept routing?): `{}`", body.trim()),
            Err(e) => e,
        };
        if Instant::now().checked_add(Duration::from_secs(1)).is_none_or(|t| t >= deadline) {
            return Err(format!("GET {url} did not return the run token within {limit:?}; last attempt: {last}"));
        }
        sleep(Duration::from_secs(1)).await;
    }
}

/// Judges what the in-cluster client got for `url`: the per-run token proves the request reached the
/// workstation's handler through the intercept; an answer without it reached something else.
///
/// # Errors
/// Why the answer does not prove the intercept, with the status and the start of the body.
pub fn judge_client_answer(url: &str, answer: &str, token: &str) -> Result<(), String> {
    if answer.contains(token) {
        return Ok(());
    }
    let status = answer.lines().find_map(|l| l.strip_prefix(STATUS_MARKER)).map(str::trim).unwrap_or("none");
    let body: String = answer.lines().filter(|l| !l.starts_with(STATUS_MARKER)).collect::<Vec<_>>().join(" ");
    let body: String = body.trim().chars().take(300).collect();
    if status.starts_with('2') {
        Err(format!(
            "GET {url} from inside the cluster answered {status} without the run token: it reached the app, not the \
             intercept; body `{body}`"
        ))
    } else {
        Err(format!("GET {url} from inside the cluster did not return the run token (HTTP status {status}): `{body}`"))
    }
}

/// One GET of `url` (`http://host:port/path`), as the in-cluster client's log would show it: the
/// body, then [`STATUS_MARKER`] and the status code. For doubles of the client pod.
///
/// # Errors
/// No answer in `limit`.
pub async fn client_log_of(url: &str, limit: Duration) -> Result<String, String> {
    let body = get_once(url, limit).await?;
    Ok(format!("{body}\n{STATUS_MARKER}200\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_answer_without_the_token_is_the_app_not_the_intercept() {
        let url = "http://demo.kyvtel-app.svc.cluster.local:80/";
        assert!(judge_client_answer(url, "kyvtel-token=tok\nkyvtel-http-status=200\n", "tok").is_ok());
        let e = judge_client_answer(url, "NOW: 2026\nkyvtel-http-status=200\n", "tok").unwrap_err();
        assert!(e.contains("reached the app, not the intercept") && e.contains("NOW: 2026"), "{e}");
        let e =
            judge_client_answer(url, "curl: (6) Could not resolve host\nkyvtel-http-status=000\n", "tok").unwrap_err();
        assert!(e.contains("HTTP status 000") && e.contains("Could not resolve host"), "{e}");
    }

    #[tokio::test]
    async fn the_server_answers_with_the_token_and_the_client_checks_it() {
        let server = serve(0, "tok-123".into()).await.unwrap();
        let url = format!("http://127.0.0.1:{}/", server.port);
        expect_token(&url, "tok-123", Duration::from_secs(5)).await.unwrap();
        let err = expect_token(&url, "other", Duration::from_secs(2)).await.unwrap_err();
        assert!(err.contains("answered without the run token"), "{err}");
    }

    #[tokio::test]
    async fn a_closed_port_reports_the_connection_error() {
        let server = serve(0, "t".into()).await.unwrap();
        let port = server.port;
        drop(server);
        tokio::task::yield_now().await;
        let err = expect_token(&format!("http://127.0.0.1:{port}/"), "t", Duration::from_secs(2)).await.unwrap_err();
        assert!(err.contains("last attempt: connect 127.0.0.1"), "{err}");
    }

    #[test]
    fn urls_split() {
        assert_eq!(split_url("http://10.96.0.12:80/x"), Some(("10.96.0.12".into(), 80, "/x".into())));
        assert_eq!(
            split_url("http://demo.ns.svc.cluster.local"),
            Some(("demo.ns.svc.cluster.local".into(), 80, "/".into()))
        );
        assert_eq!(split_url("https://x"), None);
    }
}
