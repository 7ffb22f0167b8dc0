//! What the HTTP parser refuses is answered as JSON too: raw requests over a TCP socket, as a fuzzer or a
//! broken client sends them, each answered with the API's error shape and a documented code — at once
//! where nothing more can come, after the body timeout where the client stalls.

use std::time::Duration;

use idfed_tests::server::{TestServer, user};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off the wire.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {self:?} {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts an error of `status` with `code`, as JSON; the code.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "{self:?}"
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
}

/// Parses every response in `bytes` (each framed by its `Content-Length`).
fn responses(mut bytes: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(bytes)))
            + 4;
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        out.push(Response {
            status,
            headers,
            body: bytes[end..end + length].to_vec(),
        });
        bytes = &bytes[end + length..];
    }
    out
}

/// Sends `request` on a fresh connection, half-closes it when `half_close`, and reads until the server
/// closes; the responses. A generous guard keeps a hanging server from hanging the test.
async fn exchange(server: &TestServer, request: &[u8], half_close: bool) -> Vec<Response> {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut received))
        .await
        .expect("the server neither answered nor closed")
        .unwrap();
    responses(&received)
}

async fn server() -> TestServer {
    TestServer::start_with_server(
        vec![user("alice", &["dev"])],
        "body_timeout_seconds = 1\n",
        "",
    )
    .await
}

#[tokio::test]
async fn a_malformed_header_value_is_a_json_400() {
    let server = server().await;
    let answers = exchange(
        &server,
        b"GET /api/v1/connectors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x01\x7f\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    answers[0].assert_error(400, "malformed_request");
    assert_eq!(answers[0].header("connection"), Some("close"));
    server.stop().await;
}

#[tokio::test]
async fn bytes_that_are_not_a_path_are_a_json_400() {
    let server = server().await;
    for request in [
        &b"GET /api/\x01v1 HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET http://[::1/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /api/v1/login HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let answers = exchange(&server, request, false).await;
        assert_eq!(answers.len(), 1, "{:?}: {answers:?}", String::from_utf8_lossy(request));
        answers[0].assert_error(400, "malformed_request");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_http_version_is_a_json_505() {
    let server = server().await;
    let answers = exchange(&server, b"GET /healthz HTTP/1.7\r\nHost: x\r\n\r\n", false).await;
    answers[0].assert_error(505, "http_version_not_supported");
    server.stop().await;
}

#[tokio::test]
async fn oversized_or_too_many_headers_are_a_json_431() {
    let server = server().await;
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answers = exchange(&server, big.as_bytes(), false).await;
    answers[0].assert_error(431, "headers_too_large");

    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answers = exchange(&server, many.as_bytes(), false).await;
    answers[0].assert_error(431, "headers_too_large");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_request_after_good_ones_on_one_connection_is_answered_after_them() {
    let server = server().await;
    // A GET, a POST with a counted body, a POST with a chunked body, then garbage: the three are
    // answered in order, then the garbage, as JSON, and the connection ends.
    let login = br#"{"username":"alice","password":"wrong-password-here"}"#;
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    request.extend_from_slice(
        format!(
            "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            login.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(login);
    request.extend_from_slice(
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let (first, second) = login.split_at(10);
    for chunk in [first, second] {
        request.extend_from_slice(format!("{:x};ext=1\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    request.extend_from_slice(b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n");
    let answers = exchange(&server, &request, false).await;
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert_eq!(answers[0].status, 200, "{answers:?}");
    answers[1].assert_error(401, "invalid_credentials");
    answers[2].assert_error(401, "invalid_credentials");
    answers[3].assert_error(400, "malformed_request");
    server.stop().await;
}

#[tokio::test]
async fn a_body_cut_short_by_the_client_is_answered_at_once() {
    let server = server().await;
    let answers = exchange(
        &server,
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":",
        true,
    )
    .await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    answers[0].assert_error(400, "incomplete_body");
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_body_times_out_as_json_408() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":")
        .await
        .unwrap();
    // The connection stays open: the answer comes from the body timeout (1 s here), not the
    // request timeout (30 s).
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut received))
        .await
        .expect("no answer before the request timeout")
        .unwrap();
    let answers = responses(&received);
    assert_eq!(answers.len(), 1, "{answers:?}");
    answers[0].assert_error(408, "body_timeout");
    server.stop().await;
}

#[tokio::test]
async fn good_requests_still_work_over_keep_alive() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        let answers = responses(&buf[..n]);
        assert_eq!(answers[0].status, 200, "{answers:?}");
        assert_eq!(answers[0].json()["status"], "ok");
    }
    server.stop().await;
}
