//! Reading one HTTP/1.1 answer from bytes as they arrive, for the event
//! loop ([`crate::runner`]), which reads whatever a socket holds and feeds
//! it here instead of awaiting a reader.
//!
//! Only the head is parsed ([`crate::http::parse_head`]: status, body
//! framing, `Retry-After`, `Connection`); body bytes are counted off and
//! dropped, so an answer that arrives in one read is parsed straight from
//! the caller's buffer and nothing is copied or allocated.

use std::io;

use crate::http::{chunked_end, parse_head, Answer, Framing, Head};

/// Longest head accepted; a server sending more is broken.
const MAX_HEAD: usize = 64 * 1024;

/// Buffer capacity kept between answers; a rare large chunked body must
/// not pin its memory to the connection for the rest of the run.
const KEEP: usize = 16 * 1024;

/// A complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Status and `Retry-After`.
    pub answer: Answer,
    /// The connection must not carry another request: the server said it
    /// closes it, or sent bytes beyond the answer (no request was
    /// pipelined, so its framing cannot be trusted).
    pub close: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for (the rest of) a head.
    Head,
    /// Counting off a body of known length.
    Length { head: Head, remaining: usize },
    /// Collecting a chunked body until its last chunk.
    Chunked { head: Head },
    /// Dropping a body that ends when the server closes.
    UntilClose { head: Head },
}

/// The parser of one connection's answers, one at a time.
#[derive(Debug)]
pub struct AnswerReader {
    /// A partial head, or a chunked body so far.
    buf: Vec<u8>,
    state: State,
}

impl Default for AnswerReader {
    fn default() -> Self {
        AnswerReader {
            buf: Vec::new(),
            state: State::Head,
        }
    }
}

impl AnswerReader {
    /// Forgets a partly read answer (the connection is being replaced).
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.buf.clear();
    }

    /// Takes the next bytes of the connection; `Some` once they complete
    /// the answer.
    pub fn feed(&mut self, data: &[u8]) -> io::Result<Option<Done>> {
        if !matches!(self.state, State::Head) {
            return self.body(data);
        }
        if self.buf.is_empty() {
            // The usual case: the whole head is in this read.
            return match parse_head(data)? {
                Some(head) => self.after_head(head, &data[head.len..]),
                None => {
                    self.buf.extend_from_slice(data);
                    Ok(None)
                }
            };
        }
        self.buf.extend_from_slice(data);
        match parse_head(&self.buf)? {
            Some(head) => {
                let rest = self.buf.split_off(head.len);
                self.buf.clear();
                self.after_head(head, &rest)
            }
            None if self.buf.len() > MAX_HEAD => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer head too long",
            )),
            None => Ok(None),
        }
    }

    /// The server closed the connection: the answer, when its body was
    /// framed by the close; else an error.
    pub fn eof(&mut self) -> io::Result<Done> {
        let state = self.state;
        self.reset();
        match state {
            State::UntilClose { head } => Ok(Done {
                answer: answer_of(&head),
                close: true,
            }),
            _ => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    fn after_head(&mut self, head: Head, rest: &[u8]) -> io::Result<Option<Done>> {
        if head.interim() {
            // 100 Continue and the like: the real answer follows.
            return if rest.is_empty() {
                Ok(None)
            } else {
                self.feed(rest)
            };
        }
        self.state = match head.framing {
            Framing::Length(remaining) => State::Length { head, remaining },
            Framing::Chunked => State::Chunked { head },
            Framing::UntilClose => State::UntilClose { head },
        };
        self.body(rest)
    }

    fn body(&mut self, data: &[u8]) -> io::Result<Option<Done>> {
        match &mut self.state {
            State::Length { head, remaining } => {
                let take = (*remaining).min(data.len());
                *remaining -= take;
                if *remaining > 0 {
                    return Ok(None);
                }
                let head = *head;
                Ok(Some(self.finish(&head, data.len() > take)))
            }
            State::Chunked { head } => {
                let head = *head;
                self.buf.extend_from_slice(data);
                match chunked_end(&self.buf)? {
                    Some(end) => {
                        let extra = end < self.buf.len();
                        Ok(Some(self.finish(&head, extra)))
                    }
                    None => Ok(None),
                }
            }
            State::UntilClose { .. } => Ok(None),
            State::Head => self.feed(data),
        }
    }

    fn finish(&mut self, head: &Head, extra: bool) -> Done {
        self.reset();
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
        Done {
            answer: answer_of(head),
            close: head.close || extra,
        }
    }
}

fn answer_of(head: &Head) -> Answer {
    Answer {
        status: head.status,
        retry_after: head.retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    fn done(status: u16, close: bool) -> Option<Done> {
        Some(Done {
            answer: Answer {
                status,
                retry_after: false,
            },
            close,
        })
    }

    #[test]
    fn a_whole_answer_in_one_read() {
        let mut r = AnswerReader::default();
        assert_eq!(r.feed(OK).unwrap(), done(200, false));
        // And the next one on the same connection.
        assert_eq!(r.feed(OK).unwrap(), done(200, false));
    }

    #[test]
    fn an_answer_split_at_every_byte() {
        for cut in 1..OK.len() {
            let mut r = AnswerReader::default();
            assert_eq!(r.feed(&OK[..cut]).unwrap(), None, "cut at {cut}");
            assert_eq!(
                r.feed(&OK[cut..]).unwrap(),
                done(200, false),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn status_retry_after_and_close() {
        let mut r = AnswerReader::default();
        let shed = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let d = r.feed(shed).unwrap().unwrap();
        assert!(d.answer.shed());
        assert!(d.close);
        let old = b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(r.feed(old).unwrap(), done(404, true));
    }

    #[test]
    fn bytes_beyond_the_answer_close_the_connection() {
        let mut r = AnswerReader::default();
        let mut two = OK.to_vec();
        two.extend_from_slice(OK);
        assert_eq!(r.feed(&two).unwrap(), done(200, true));
    }

    #[test]
    fn interim_chunked_and_until_close() {
        let mut r = AnswerReader::default();
        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
        assert_eq!(r.feed(chunked).unwrap(), None);
        assert_eq!(r.feed(b"0\r\n\r\n").unwrap(), done(201, false));
        let until_close = b"HTTP/1.1 200 OK\r\n\r\nbody";
        assert_eq!(r.feed(until_close).unwrap(), None);
        assert_eq!(r.eof().unwrap(), done(200, true).unwrap());
    }

    #[test]
    fn a_close_mid_answer_or_garbage_is_an_error() {
        let mut r = AnswerReader::default();
        assert_eq!(r.feed(&OK[..OK.len() - 1]).unwrap(), None);
        assert!(r.eof().is_err());
        assert!(r.feed(b"garbage\r\n\r\n").is_err());
    }
}
