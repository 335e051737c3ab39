//! `POST /v1/citizens:match` (`citizen:match`): a ministry's dataset,
//! NDJSON or CSV, matched row by row and streamed both ways, so that a
//! 5 GB file needs neither side to hold it. One result line per row, in
//! order, with its row number (the engine's [`Matcher`] and the wire forms
//! of `dancu_data::matching`, as `dancu-data match` writes them).
//!
//! The trust rules of verification hold per row (DESIGN.md):
//! - only the card's fields may be claimed; another column is a `400`
//!   (CSV header) or that row's `invalid` line (NDJSON);
//! - a death is told only for a row whose every claim held;
//! - rows count against the client's rate limit one each: a block of rows
//!   waits until the limit allows it, so the stream slows down instead of
//!   failing halfway;
//! - a subject named twice in one block gets `duplicate_subject`, and
//!   mismatches count towards the per-subject throttle (a throttled subject
//!   gets a `throttled` line);
//! - every row is audited (a grouped line per block, as batches are), and
//!   every candidate ID named is audited as an access to that person; a
//!   block's results are sent only once its audit is durable (the next
//!   block is matched meanwhile), and an audit failure ends the stream with
//!   an error line.
//!
//! Candidates (`?candidates=true`) are searched by folded name + date of
//! birth (+ province) through the overlay, so today's births and name
//! corrections are found.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dancu_data::matching::{next_record, RowParser};
use dancu_data::Format;
use dancu_engine::matching::{
    write_csv, write_ndjson, MatchRow, MatchStatus, Matcher, Refusal, RowResult, CSV_RESULT_HEADER,
};
use dancu_engine::FieldSet;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, StatusCode};
use tokio::sync::mpsc;

use crate::api_error::ApiError;
use crate::audit::{self, Entry, Operation, Outcome};
use crate::body::{streamed, HttpResponse};
use crate::keys::{retry_after_secs, ClientId};
use crate::lookup::SnapshotGuard;
use crate::state::{Access, AuditTicket, State};

/// Input bytes gathered before a block is matched.
const BLOCK_BYTES: usize = 256 << 10;
/// Most rows matched (and charged, audited, answered) together.
const BLOCK_ROWS: usize = 2048;
/// A record longer than this is refused and ends the stream (no real row
/// is near it; without a limit one endless line would fill memory).
const MAX_RECORD_BYTES: usize = 1 << 20;
/// Result chunks in flight to the client.
const CHANNEL_CHUNKS: usize = 4;

/// `POST /v1/citizens:match`.
pub async fn match_rows(
    state: &Arc<State>,
    access: Access<'_>,
    req: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let (candidates, format_param) = query_params(req.uri().query())?;
    let format = match format_param {
        Some(format) => format,
        None => input_format(&req)?,
    };
    let timeout = state.limits.body_timeout;
    let mut body = req.into_body();
    let mut parser = RowParser::new(format);
    let mut pending = Vec::new();
    // A CSV header is read before answering, so that a bad one is a 400.
    let mut eof = false;
    while parser.wants_header() {
        if eof && pending.is_empty() {
            break; // an empty body is an empty dataset: no header, no rows
        }
        if let Some(end) = next_record(&pending, format).or(eof.then_some(pending.len())) {
            parser
                .read_header(&pending[..end])
                .map_err(|e| ApiError::bad_request("bad_header", e.to_string()))?;
            pending.drain(..(end + 1).min(pending.len()));
            break;
        }
        if pending.len() > MAX_RECORD_BYTES {
            return Err(ApiError::bad_request("bad_header", "no CSV header line"));
        }
        match next_chunk(&mut body, timeout).await? {
            Some(chunk) => pending.extend_from_slice(&chunk),
            None => eof = true,
        }
    }
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let job = MatchJob {
        state: Arc::clone(state),
        client: access.client,
        source: access.source,
        request_id: access.request_id,
        format,
        matcher: Matcher::new(candidates),
        parser,
        tx,
    };
    tokio::spawn(job.run(body, pending, eof));
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    Ok(streamed(rx, content_type))
}

/// The body's format from `Content-Type`: NDJSON or CSV, else `415`.
fn input_format(req: &Request<Incoming>) -> Result<Format, ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence.to_ascii_lowercase().as_str() {
        // No Content-Type (an empty body has none): NDJSON.
        "" | "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
            Ok(Format::Ndjson)
        }
        "text/csv" => Ok(Format::Csv),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the rows as application/x-ndjson or text/csv",
        )),
    }
}

/// `?candidates=true|false` (default false) and `format=ndjson|csv`, which
/// overrides `Content-Type` for clients that send a fixed one.
fn query_params(query: Option<&str>) -> Result<(bool, Option<Format>), ApiError> {
    let (mut candidates, mut format) = (false, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair {
            "candidates=true" => candidates = true,
            "candidates=false" => candidates = false,
            "format=ndjson" => format = Some(Format::Ndjson),
            "format=csv" => format = Some(Format::Csv),
            _ => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!(
                        "unknown query parameter {pair:?}; only candidates=true|false and \
                         format=ndjson|csv"
                    ),
                ))
            }
        }
    }
    Ok((candidates, format))
}

/// The next data chunk of the body; `None` at its end.
async fn next_chunk(body: &mut Incoming, timeout: Duration) -> Result<Option<Bytes>, ApiError> {
    loop {
        match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body stalled",
                ))
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(
                    "bad_body",
                    format!("could not read the body: {e}"),
                ))
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// A block's written results and the audit write they wait for.
struct Answered {
    results: Vec<u8>,
    durable: Option<audit::Durable>,
}

/// One streaming match, run as its own task.
struct MatchJob {
    state: Arc<State>,
    client: ClientId,
    source: Option<std::net::IpAddr>,
    request_id: u64,
    format: Format,
    matcher: Matcher,
    parser: RowParser,
    tx: mpsc::Sender<Bytes>,
}

impl MatchJob {
    async fn run(mut self, mut body: Incoming, mut pending: Vec<u8>, mut eof: bool) {
        if self.format == Format::Csv && !self.send(CSV_RESULT_HEADER.as_bytes().to_vec()).await {
            return;
        }
        let mut rows: Vec<MatchRow> = Vec::new();
        // The last block answered, sent once its audit is durable: the
        // next block is read and matched while the audit log syncs.
        let mut unsent: Option<Answered> = None;
        loop {
            while !eof && pending.len() < BLOCK_BYTES {
                match next_chunk(&mut body, self.state.limits.body_timeout).await {
                    Ok(Some(chunk)) => pending.extend_from_slice(&chunk),
                    Ok(None) => eof = true,
                    Err(e) => return self.flush_and_fail(unsent, &e).await,
                }
            }
            let cut = match dancu_data::matching::last_record_end(&pending, self.format) {
                _ if eof => pending.len(),
                Some(end) => end + 1,
                None if pending.len() > MAX_RECORD_BYTES => {
                    let too_long = ApiError::bad_request(
                        "row_too_long",
                        format!("a row is longer than {MAX_RECORD_BYTES} bytes"),
                    );
                    return self.flush_and_fail(unsent, &too_long).await;
                }
                None => {
                    // A record longer than a block: read on.
                    match next_chunk(&mut body, self.state.limits.body_timeout).await {
                        Ok(Some(chunk)) => pending.extend_from_slice(&chunk),
                        Ok(None) => eof = true,
                        Err(e) => return self.flush_and_fail(unsent, &e).await,
                    }
                    continue;
                }
            };
            let rest = pending.split_off(cut);
            let block = std::mem::replace(&mut pending, rest);
            let mut records = &block[..];
            while !records.is_empty() {
                // Rows are kept between blocks, so their buffers are reused.
                let mut n = 0;
                while n < BLOCK_ROWS && !records.is_empty() {
                    let end = next_record(records, self.format).unwrap_or(records.len());
                    if n == rows.len() {
                        rows.push(MatchRow::default());
                    }
                    self.parser.read_row(&records[..end], &mut rows[n]);
                    n += 1;
                    records = records.get(end + 1..).unwrap_or_default();
                }
                let answered = match self.answer(&mut rows[..n]).await {
                    Ok(answered) => answered,
                    Err(e) => return self.flush_and_fail(unsent, &e).await,
                };
                if let Some(previous) = unsent.replace(answered) {
                    match self.send_when_durable(previous).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => return self.fail(&e).await,
                    }
                }
            }
            if eof && pending.is_empty() {
                if let Some(last) = unsent.take() {
                    if let Err(e) = self.send_when_durable(last).await {
                        self.fail(&e).await;
                    }
                }
                return;
            }
        }
    }

    /// Sends a block's results once its audit is durable; false when the
    /// client has gone.
    async fn send_when_durable(&self, answered: Answered) -> Result<bool, ApiError> {
        if let (Some(durable), Some(log)) = (answered.durable, self.state.audit.as_ref()) {
            log.wait(durable)
                .await
                .map_err(ApiError::audit_unavailable)?;
        }
        Ok(self.send(answered.results).await)
    }

    /// Ends the stream with an error line, after the results of the block
    /// answered before it.
    async fn flush_and_fail(self, unsent: Option<Answered>, error: &ApiError) {
        if let Some(previous) = unsent {
            match self.send_when_durable(previous).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return self.fail(&e).await,
            }
        }
        self.fail(error).await
    }

    /// Charges, checks, matches and audits one block of rows; its written
    /// results, to be sent once the audit is durable.
    async fn answer(&mut self, rows: &mut [MatchRow]) -> Result<Answered, ApiError> {
        let state = &*self.state;
        self.charge(rows.len()).await?;
        let now = Instant::now();
        let mut seen = HashSet::with_capacity(rows.len());
        for row in rows.iter_mut().filter(|r| r.refused.is_none()) {
            let Some(id) = row.id() else { continue };
            if !seen.insert(id.get()) {
                row.refused = Some(Refusal::invalid(
                    "duplicate_subject",
                    format!("{id} appears twice in one block of rows; a block names each subject at most once"),
                ));
            } else if let Err(wait) = state.mismatches.check(self.client, id.get(), now) {
                row.refused = Some(Refusal {
                    status: MatchStatus::Throttled,
                    code: "too_many_mismatches",
                    message: format!(
                        "too many mismatches on this subject by this client; retry after {} s",
                        retry_after_secs(wait)
                    )
                    .into(),
                });
            }
        }
        let mut results = Vec::with_capacity(rows.len());
        {
            let snapshot = SnapshotGuard::acquire(state)?;
            let lookup = snapshot.lookup(state);
            self.matcher.match_rows(&lookup, rows, &mut results);
        }
        let ticket = AuditTicket::default();
        let access = Access {
            client: self.client,
            operation: Operation::Match,
            time_us: audit::now_us(),
            source: self.source,
            request_id: self.request_id,
            fields: claimed_fields(rows),
            digest_prefix: 0,
            ticket: &ticket,
        };
        let entries = results.len() + results.iter().map(|r| r.candidates().len()).sum::<usize>();
        state.audit_request(&access, entries, audit_entries(&access, &results))?;
        for r in results.iter().filter(|r| r.mismatched != 0) {
            if let Some(id) = r.id {
                state.mismatches.record_mismatch(self.client, id.get(), now);
            }
        }
        let mut out = Vec::with_capacity(results.len() * 72);
        for r in &results {
            match self.format {
                Format::Ndjson => write_ndjson(r, &mut out),
                Format::Csv => write_csv(r, &mut out),
            }
        }
        Ok(Answered {
            results: out,
            durable: ticket.take(),
        })
    }

    /// Charges `rows` items to the client's rate limit, waiting as long as
    /// the limit asks (in parts of at most the client's burst, which a
    /// limiter can always grant).
    async fn charge(&self, rows: usize) -> Result<(), ApiError> {
        let mut left = rows as u64;
        while left > 0 {
            let wait = {
                let keys = self.state.keys.load();
                let Some(client) = keys.client(self.client) else {
                    return Err(ApiError::unauthenticated());
                };
                let Some(limiter) = client.limiter.as_ref() else {
                    return Ok(());
                };
                let part = left.min(limiter.burst().max(1));
                match limiter.check_n(Instant::now(), part) {
                    Ok(()) => {
                        left -= part;
                        continue;
                    }
                    Err(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Sends a chunk of results; false when the client has gone.
    async fn send(&self, chunk: Vec<u8>) -> bool {
        self.tx.send(Bytes::from(chunk)).await.is_ok()
    }

    /// Ends the stream with an error line.
    async fn fail(self, error: &ApiError) {
        let mut out = Vec::with_capacity(128);
        match self.format {
            Format::Ndjson => {
                out.extend_from_slice(b"{\"error\":");
                error.write_object(&mut out);
                out.extend_from_slice(b"}\n");
            }
            Format::Csv => {
                out.extend_from_slice(b"0,,error,,,\"");
                out.extend_from_slice(error.code().as_bytes());
                out.extend_from_slice(b"\"\n");
            }
        }
        self.send(out).await;
    }
}

/// The audit entries of a block: one per row (its subject, or 0 for a row
/// without a well-formed ID), then one `found` access per candidate named.
fn audit_entries<'a>(
    access: &'a Access<'_>,
    results: &'a [RowResult],
) -> impl Iterator<Item = Entry> + 'a {
    let rows = results.iter().map(|r| {
        let outcome = match r.status {
            MatchStatus::Found | MatchStatus::Deceased if r.mismatched == 0 => Outcome::Match,
            MatchStatus::Found | MatchStatus::Deceased => Outcome::Mismatch,
            _ => Outcome::NotFound,
        };
        access.entry(outcome, r.id.map_or(0, |id| id.get()), 0)
    });
    let candidates = results
        .iter()
        .flat_map(|r| r.candidates().iter())
        .map(|&id| access.entry(Outcome::Found, id, 0));
    rows.chain(candidates)
}

/// The record fields the rows of a block claim, for the audit log.
fn claimed_fields(rows: &[MatchRow]) -> FieldSet {
    static FIELDS: OnceLock<[FieldSet; 5]> = OnceLock::new();
    let [id, name, dob, sex, residence] = *FIELDS.get_or_init(|| {
        [
            "id",
            "full_name",
            "date_of_birth",
            "sex",
            "permanent_residence",
        ]
        .map(|f| FieldSet::parse_list(f).unwrap_or(FieldSet::NONE))
    });
    rows.iter().fold(id, |acc, r| {
        let mut acc = acc;
        if !r.full_name.is_empty() {
            acc = acc.union(name);
        }
        if r.date_of_birth.is_some() {
            acc = acc.union(dob);
        }
        if r.sex.is_some() {
            acc = acc.union(sex);
        }
        if !r.permanent_residence.is_empty() {
            acc = acc.union(residence);
        }
        acc
    })
}
