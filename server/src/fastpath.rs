//! Fast paths for parsing the bodies of `batchVerify`, `verify` and
//! `qr:verify`.
//!
//! serde's derived parser for [`Claims`] allocates a `String` for every
//! value it reads (the ID, the date and each vocabulary word go through
//! `Cow<str>`, which deserializes owned) and dispatches every key through a
//! generic visitor: at 1000 claims a request that was a third of the
//! server's time. This scanner reads the shape that gateways send — an
//! object `{"requests": [...]}` of flat claim objects whose values are
//! strings without escapes, or `true`/`false` for `alive` — straight into
//! [`Claims`], allocating only the text claims it keeps.
//!
//! It accepts a subset of what serde accepts and builds the same value for
//! it; on anything else (an escape, `null`, a number, an unknown or repeated
//! key, a malformed ID or date, bad UTF-8, trailing bytes) it returns `None`
//! and the caller parses the body with serde, which also writes the error
//! message. So the fast path never decides what is an error.

use dancu_engine::{Claim, Claims, PersonalId};

/// The claims of a `citizens:verify` body (one flat claim object), or
/// `None` to fall back to serde.
pub(crate) fn verify(body: &[u8]) -> Option<Claims> {
    let mut s = Scanner { b: body, at: 0 };
    let c = claims(&mut s)?;
    s.ws();
    (s.at == s.b.len()).then_some(c)
}

/// The QR text of a `qr:verify` body, `{"qr": "..."}` with a string
/// without escapes, borrowed; `None` to fall back to serde.
pub(crate) fn qr(body: &[u8]) -> Option<&str> {
    let mut s = Scanner { b: body, at: 0 };
    s.expect(b'{')?;
    if s.key()? != b"qr" {
        return None;
    }
    s.expect(b':')?;
    let qr = s.string()?;
    s.expect(b'}')?;
    s.ws();
    (s.at == s.b.len()).then_some(qr)
}

/// The claims of a `batchVerify` body, or `None` to fall back to serde.
pub(crate) fn batch_verify(body: &[u8]) -> Option<Vec<Claims>> {
    let mut s = Scanner { b: body, at: 0 };
    s.expect(b'{')?;
    if s.key()? != b"requests" {
        return None;
    }
    s.expect(b':')?;
    s.expect(b'[')?;
    let mut out = Vec::new();
    if !s.eat(b']') {
        loop {
            out.push(claims(&mut s)?);
            if s.eat(b']') {
                break;
            }
            s.expect(b',')?;
        }
    }
    s.expect(b'}')?;
    s.ws();
    (s.at == s.b.len()).then_some(out)
}

fn claims(s: &mut Scanner<'_>) -> Option<Claims> {
    s.expect(b'{')?;
    let mut id = None;
    let mut c = Claims::about(PersonalId::from_u64(1_000_000_000).ok()?);
    if s.eat(b'}') {
        return None; // no `id`: serde says so
    }
    loop {
        let key = s.key()?;
        s.expect(b':')?;
        // A repeated key is an error for serde: leave it to serde. The
        // claim keys and their parsers are the engine's (`Claim`).
        if key == b"id" {
            if id.replace(PersonalId::parse(s.string()?).ok()?).is_some() {
                return None;
            }
        } else {
            match Claim::from_key(key)? {
                Claim::Alive if c.alive.is_none() => {
                    c.alive = Some(if s.literal("true") {
                        true
                    } else if s.literal("false") {
                        false
                    } else {
                        return None;
                    });
                }
                Claim::Alive => return None,
                claim => c.set_text(claim, s.string()?)?,
            }
        }
        if s.eat(b'}') {
            break;
        }
        s.expect(b',')?;
    }
    c.id = id?;
    Some(c)
}

/// A cursor over JSON bytes.
struct Scanner<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.at) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }

    /// Skips whitespace, then `word` if it is next.
    fn literal(&mut self, word: &str) -> bool {
        self.ws();
        let found = self.b[self.at..].starts_with(word.as_bytes());
        if found {
            self.at += word.len();
        }
        found
    }

    /// The bytes of a string without escapes or control characters, and
    /// whether they are all ASCII.
    fn raw_string(&mut self) -> Option<(&'a [u8], bool)> {
        self.expect(b'"')?;
        let rest = &self.b[self.at..];
        let mut high = 0;
        for (len, &c) in rest.iter().enumerate() {
            match c {
                b'"' => {
                    self.at += len + 1;
                    return Some((&rest[..len], high < 0x80));
                }
                b'\\' | 0..=0x1F => return None,
                _ => high |= c,
            }
        }
        None
    }

    /// An object key: its bytes (compared with the known keys as bytes).
    fn key(&mut self) -> Option<&'a [u8]> {
        self.raw_string().map(|(bytes, _)| bytes)
    }

    /// A string without escapes or control characters, as borrowed `&str`.
    fn string(&mut self) -> Option<&'a str> {
        match self.raw_string()? {
            // SAFETY: every byte is below 0x80, and ASCII is valid UTF-8.
            (bytes, true) => Some(unsafe { std::str::from_utf8_unchecked(bytes) }),
            (bytes, false) => std::str::from_utf8(bytes).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        requests: Vec<Claims>,
    }

    /// What the fast path accepts, serde accepts with the same value; what
    /// it does not, it leaves to serde.
    #[test]
    fn agrees_with_serde() {
        let accepted = [
            r#"{"requests":[]}"#,
            r#" { "requests" : [ { "id" : "079089012345" , "full_name" : "Nguyễn Văn An" } ] } "#,
            r#"{"requests":[{"id":"079089012345","full_name":"NGUYEN VAN AN","date_of_birth":"1989-03-14","sex":"male"},{"id":"001089000007","alive":false,"nationality":"VN"}]}"#,
            r#"{"requests":[{"alive":true,"id":"079089012345","hometown":"Hà Nội","father_name":"X","mother_name":"Y","spouse_name":"Z","legacy_id":"123456789","permanent_residence":"a","temporary_residence":"b","current_residence":"c","birth_registration_place":"d"}]}"#,
        ];
        for body in accepted {
            let fast = batch_verify(body.as_bytes()).unwrap_or_else(|| panic!("{body}"));
            let slow: Body = serde_json::from_str(body).unwrap();
            assert_eq!(fast, slow.requests, "{body}");
        }
        let refused = [
            r#"{"requests":[{"id":"079089012345","full_name":"A\"B"}]}"#,
            r#"{"requests":[{"id":"079089012345","full_name":null}]}"#,
            r#"{"requests":[{"id":"079089012345","id":"079089012345"}]}"#,
            r#"{"requests":[{"id":"079089012345","colour":"red"}]}"#,
            r#"{"requests":[{"id":"12345","sex":"male"}]}"#,
            r#"{"requests":[{"id":"079089012345","sex":"other"}]}"#,
            r#"{"requests":[{"id":"079089012345","date_of_birth":"1989-02-30"}]}"#,
            r#"{"requests":[{"full_name":"A"}]}"#,
            r#"{"requests":[{}]}"#,
            r#"{"requests":[{"id":"079089012345"}],"x":1}"#,
            r#"{"requests":[{"id":"079089012345"}]} x"#,
            r#"{"requests":[{"id":"079089012345"},]}"#,
            r#"{"requests":[{"id":"079089012345","alive":1}]}"#,
            r#"{"requests":[{"id":"079089012345""#,
            "",
        ];
        for body in refused {
            assert!(batch_verify(body.as_bytes()).is_none(), "{body}");
        }
        let bad_utf8 = b"{\"requests\":[{\"id\":\"079089012345\",\"full_name\":\"\xff\"}]}";
        assert!(batch_verify(bad_utf8).is_none());
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct QrBody {
        qr: String,
    }

    /// A JSON text built from pieces that the fast paths accept and pieces
    /// that they must leave to serde (escapes, `null`, numbers, unknown or
    /// repeated keys, malformed values, stray commas and bytes).
    fn json_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("id"),
            Just("full_name"),
            Just("date_of_birth"),
            Just("sex"),
            Just("legacy_id"),
            Just("alive"),
            Just("permanent_residence"),
            Just("hometown"),
            Just("nationality"),
            Just("qr"),
            Just("colour"),
        ];
        let value = prop_oneof![
            Just("\"079089012345\"".to_owned()),
            Just("\"001189000007\"".to_owned()),
            Just("\"12345\"".to_owned()),
            Just("\"1989-03-14\"".to_owned()),
            Just("\"1989-02-30\"".to_owned()),
            Just("\"male\"".to_owned()),
            Just("\"123456789\"".to_owned()),
            Just("\"VN\"".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("null".to_owned()),
            Just("1".to_owned()),
            Just("\"A\\\"B\"".to_owned()),
            Just("\"\\u0041n\"".to_owned()),
            "\"[ a-zA-Z0-9|,.\u{00C0}-\u{024F}\u{1E00}-\u{1EFF}]{0,20}\"",
        ];
        let ws = prop_oneof![Just(""), Just(""), Just(" "), Just("\n\t")];
        let member = (key, ws.clone(), value, ws.clone())
            .prop_map(|(k, w1, v, w2)| format!("{w1}\"{k}\"{w2}:{w1}{v}{w2}"));
        let tail = prop_oneof![
            Just(""),
            Just(""),
            Just(""),
            Just(","),
            Just(" x"),
            Just("}")
        ];
        (proptest::collection::vec(member, 0..6), ws, tail).prop_map(|(members, w, tail)| {
            format!("{w}{{{}}}{w}{tail}", members.join(",")).into_bytes()
        })
    }

    proptest::proptest! {
        /// Whatever the verify fast path accepts, serde accepts with the
        /// same claims; on arbitrary bytes too.
        #[test]
        fn verify_agrees_with_serde(
            body in proptest::prop_oneof![json_text(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)],
        ) {
            if let Some(fast) = verify(&body) {
                let slow: Claims = serde_json::from_slice(&body).expect("serde accepts what the fast path does");
                proptest::prop_assert_eq!(fast, slow);
            }
        }

        /// Whatever the QR fast path accepts, serde accepts with the same
        /// text; on arbitrary bytes too.
        #[test]
        fn qr_agrees_with_serde(
            body in proptest::prop_oneof![json_text(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)],
        ) {
            if let Some(fast) = qr(&body) {
                let slow: QrBody = serde_json::from_slice(&body).expect("serde accepts what the fast path does");
                proptest::prop_assert_eq!(fast, slow.qr.as_str());
            }
        }
    }

    #[test]
    fn verify_and_qr_take_the_usual_bodies() {
        let body = br#"{"id":"079089012345","full_name":"Nguy\u1ec5n"}"#;
        assert!(verify(body).is_none(), "an escape is serde's");
        let body = r#" {"id": "079089012345", "full_name": "Nguyễn Văn An", "sex": "male"} "#;
        let slow: Claims = serde_json::from_str(body).unwrap();
        assert_eq!(verify(body.as_bytes()), Some(slow));
        let body = r#"{"qr":"079089012345||Nguyễn Văn An|14031989|Nam|12 Lê Lợi|01072021"}"#;
        assert_eq!(
            qr(body.as_bytes()),
            Some("079089012345||Nguyễn Văn An|14031989|Nam|12 Lê Lợi|01072021")
        );
        for refused in [
            r#"{"qr":"a","qr":"b"}"#,
            r#"{"qr":null}"#,
            r#"{"qr":"a"} x"#,
            r#"{"code":"a"}"#,
            r#"{"qr":"a\u0041"}"#,
        ] {
            assert!(qr(refused.as_bytes()).is_none(), "{refused}");
        }
    }
}
