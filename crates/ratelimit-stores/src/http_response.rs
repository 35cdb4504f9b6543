//! One HTTP/1.1 response read from bytes as they arrive, for the transport whose socket lives on
//! Node's event loop (`wire_transport.rs`): the head is parsed by `httparse`, the body framed by
//! `Content-Length`, by chunked transfer coding, or (neither given) by the end of the connection.

/// Most header lines a response may have.
const MAX_HEADERS: usize = 64;
/// A head larger than this is not an Upstash answer: stop reading instead of buffering on.
const MAX_HEAD: usize = 64 * 1024;

/// A complete response.
#[derive(Debug, PartialEq)]
pub(crate) struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server will close the connection (or already has): do not reuse it.
    pub close: bool,
}

#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Accumulates one response's bytes; [`ResponseReader::feed`] says when it is complete.
#[derive(Debug, Default)]
pub(crate) struct ResponseReader {
    buf: Vec<u8>,
    /// Status, framing, close flag and where the body starts, once the head is in.
    head: Option<(u16, Framing, bool, usize)>,
}

impl ResponseReader {
    /// Adds bytes; `Ok(Some(_))` once the response is complete. Bytes past the end of the
    /// response are an error (we never send a second request on a connection before the first
    /// is answered, so a server cannot have anything else to say).
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Option<HttpResponse>, String> {
        self.buf.extend_from_slice(chunk);
        loop {
            if self.head.is_none() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                let start = match response.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => n,
                    Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                        return Err("the answer's head is too large".into())
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(e) => return Err(format!("not an HTTP answer ({e})")),
                };
                let status = response.code.unwrap_or(0);
                if (100..200).contains(&status) {
                    // An interim answer (e.g. 100 Continue): the real one follows.
                    self.buf.drain(..start);
                    continue;
                }
                let mut framing = Framing::UntilClose;
                let mut close = response.version == Some(0);
                for h in response.headers.iter() {
                    let value = std::str::from_utf8(h.value).unwrap_or("").trim();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        if !matches!(framing, Framing::Chunked) {
                            let n = value
                                .parse()
                                .map_err(|_| format!("bad Content-Length {value:?}"))?;
                            framing = Framing::Length(n);
                        }
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        if value.to_ascii_lowercase().ends_with("chunked") {
                            framing = Framing::Chunked;
                        }
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close |= value.eq_ignore_ascii_case("close");
                    }
                }
                // 204 and 304 have no body whatever the headers say.
                if status == 204 || status == 304 {
                    framing = Framing::Length(0);
                }
                self.head = Some((status, framing, close, start));
            }
            let Some((status, framing, close, start)) = &self.head else {
                return Ok(None);
            };
            let body = match framing {
                Framing::Length(n) => {
                    let have = self.buf.len() - start;
                    if have < *n {
                        return Ok(None);
                    }
                    if have > *n {
                        return Err("the server sent more than one answer".into());
                    }
                    self.buf[*start..].to_vec()
                }
                Framing::Chunked => match dechunk(&self.buf[*start..])? {
                    Some((body, used)) if used == self.buf.len() - start => body,
                    Some(_) => return Err("the server sent more than one answer".into()),
                    None => return Ok(None),
                },
                Framing::UntilClose => return Ok(None),
            };
            return Ok(Some(HttpResponse {
                status: *status,
                body,
                close: *close,
            }));
        }
    }

    /// The connection ended: completes a response framed by the end of the connection.
    pub(crate) fn end(&mut self) -> Option<HttpResponse> {
        match &self.head {
            Some((status, Framing::UntilClose, _, start)) => Some(HttpResponse {
                status: *status,
                body: self.buf[*start..].to_vec(),
                close: true,
            }),
            _ => None,
        }
    }

    /// True once any byte of the answer has arrived.
    pub(crate) fn started(&self) -> bool {
        !self.buf.is_empty() || self.head.is_some()
    }
}

/// A complete chunked body and the bytes it took, or `None` while more is needed.
fn dechunk(mut rest: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let total = rest.len();
    let mut body = Vec::new();
    loop {
        let (used, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(v)) => v,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("bad chunk size in the answer".into()),
        };
        rest = &rest[used..];
        if size == 0 {
            // Trailer lines (none expected) up to the empty line.
            loop {
                let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                let line_empty = eol == 0;
                rest = &rest[eol + 2..];
                if line_empty {
                    return Ok(Some((body, total - rest.len())));
                }
            }
        }
        let size = usize::try_from(size).map_err(|_| "chunk too large".to_string())?;
        if rest.len() < size.saturating_add(2) {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err("bad chunk ending in the answer".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` in pieces of `step` and returns the first complete response.
    fn read_in_steps(bytes: &[u8], step: usize) -> Result<Option<HttpResponse>, String> {
        let mut reader = ResponseReader::default();
        for piece in bytes.chunks(step) {
            if let Some(done) = reader.feed(piece)? {
                return Ok(Some(done));
            }
        }
        Ok(reader.end())
    }

    #[test]
    fn reads_length_chunked_and_close_delimited_answers_in_any_pieces() {
        let cases: [(&[u8], u16, &[u8], bool); 5] = [
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                200,
                b"hello",
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\nT: v\r\n\r\n",
                200,
                b"hello",
                false,
            ),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
                401,
                b"{}",
                true,
            ),
            (b"HTTP/1.0 200 OK\r\n\r\nto the end", 200, b"to the end", true),
            (
                b"HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
                204,
                b"",
                false,
            ),
        ];
        for (bytes, status, body, close) in cases {
            for step in [1, 2, 7, bytes.len()] {
                let got = read_in_steps(bytes, step).unwrap().unwrap();
                assert_eq!(
                    got,
                    HttpResponse {
                        status,
                        body: body.to_vec(),
                        close
                    },
                    "{} in steps of {step}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }

    #[test]
    fn incomplete_extra_and_broken_answers() {
        let mut reader = ResponseReader::default();
        assert_eq!(reader.feed(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
        assert!(reader.started());
        assert_eq!(reader.feed(b"ngth: 4\r\n\r\nab"), Ok(None));
        assert_eq!(
            reader.end(),
            None,
            "a length-framed body cut short is not complete"
        );
        assert!(ResponseReader::default()
            .feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab")
            .is_err());
        assert!(ResponseReader::default()
            .feed(b"SMTP ready\r\n\r\n")
            .is_err());
        assert!(ResponseReader::default()
            .feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
            .is_err());
        assert!(ResponseReader::default()
            .feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .is_err());
        assert!(!ResponseReader::default().started());
    }
}
