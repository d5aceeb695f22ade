//! The `<body/>` wrapper of XEP-0124: parsing a request body's attributes and
//! Herald payloads, and writing response bodies.
//!
//! Herald's payloads are `<op xmlns="urn:herald:1">JSON</op>` elements whose
//! character data is one JSON operation of [`crate::transports::ops`] (the
//! same as a WebSocket text frame). Other payloads are ignored.

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;

/// The BOSH namespace of `<body/>`.
pub const BOSH_NS: &str = "http://jabber.org/protocol/httpbind";

/// Herald's payload namespace.
pub const HERALD_NS: &str = "urn:herald:1";

/// The largest `rid` a session may reach (2^53 - 1).
pub const MAX_RID: u64 = (1 << 53) - 1;

/// A parsed request `<body/>`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    /// `rid` (required on every request).
    pub rid: u64,
    /// `sid` (absent when creating a session).
    pub sid: Option<String>,
    /// `wait`, seconds.
    pub wait: Option<u64>,
    /// `hold`.
    pub hold: Option<u64>,
    /// `ver` as (major, minor).
    pub ver: Option<(u32, u32)>,
    /// `ack`.
    pub ack: Option<u64>,
    /// `type="terminate"`.
    pub terminate: bool,
    /// `content` (the response content type asked for at creation).
    pub content: Option<String>,
    /// The character data of each Herald `<op>` payload, in order.
    pub ops: Vec<String>,
}

/// Why a body was refused (the session terminates with `bad-request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadBody(pub String);

fn bad(m: impl Into<String>) -> BadBody {
    BadBody(m.into())
}

/// Parses one request body.
pub fn parse(text: &str) -> Result<Request, BadBody> {
    let mut reader = NsReader::from_str(text);
    let mut req = Request::default();
    let mut depth = 0usize;
    let mut seen_body = false;
    let mut op: Option<String> = None;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| bad(format!("not well-formed XML: {e}")))?;
        let in_herald = matches!(ns, ResolveResult::Bound(Namespace(n)) if n == HERALD_NS);
        let in_bosh = matches!(ns, ResolveResult::Bound(Namespace(n)) if n == BOSH_NS);
        match event {
            Event::Start(e) if depth == 0 => {
                root(&e, in_bosh, &mut seen_body, &mut req)?;
                depth = 1;
            }
            Event::Empty(e) if depth == 0 => root(&e, in_bosh, &mut seen_body, &mut req)?,
            Event::Start(e) => {
                if depth == 1 && in_herald && e.local_name().as_ref() == "op" {
                    op = Some(String::new());
                }
                depth += 1;
            }
            Event::Empty(e) => {
                if depth == 1 && in_herald && e.local_name().as_ref() == "op" {
                    req.ops.push(String::new());
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1
                    && let Some(o) = op.take()
                {
                    req.ops.push(o);
                }
            }
            Event::Text(t) => {
                if let Some(o) = op.as_mut().filter(|_| depth == 2) {
                    o.push_str(&t.xml10_content());
                } else if depth == 1 && !t.xml10_content().trim().is_empty() {
                    return Err(bad("<body/> may hold elements only, not character data"));
                }
            }
            Event::CData(c) => {
                if let Some(o) = op.as_mut().filter(|_| depth == 2) {
                    o.push_str(&c.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| bad(format!("unknown entity &{};", &*r)))?
                        .to_string(),
                };
                if let Some(o) = op.as_mut().filter(|_| depth == 2) {
                    o.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err(bad("DTDs are not allowed in BOSH bodies")),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !seen_body {
        return Err(bad(format!(
            "empty request: send <body xmlns=\"{BOSH_NS}\" rid=\"…\"/>"
        )));
    }
    if req.rid == 0 {
        return Err(bad("every request needs rid, a positive integer"));
    }
    Ok(req)
}

/// Checks the root element and reads its attributes.
fn root(
    e: &quick_xml::events::BytesStart<'_>,
    in_bosh: bool,
    seen_body: &mut bool,
    req: &mut Request,
) -> Result<(), BadBody> {
    if *seen_body || e.local_name().as_ref() != "body" || !in_bosh {
        return Err(bad(format!(
            "the request must be one <body xmlns=\"{BOSH_NS}\"> element"
        )));
    }
    *seen_body = true;
    attributes(e, req)
}

fn attributes(e: &quick_xml::events::BytesStart<'_>, req: &mut Request) -> Result<(), BadBody> {
    for a in e.attributes() {
        let a = a.map_err(|e| bad(format!("bad attribute: {e}")))?;
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| bad(format!("bad attribute value: {e}")))?;
        let key = a.key.as_ref();
        let number = |name: &str| -> Result<u64, BadBody> {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| bad(format!("{name} must be a whole number, not {value:?}")))
        };
        match key {
            "rid" => {
                let rid = number("rid")?;
                if rid == 0 || rid > MAX_RID {
                    return Err(bad("rid must be between 1 and 2^53 - 1"));
                }
                req.rid = rid;
            }
            "sid" => req.sid = Some(value.into_owned()),
            "wait" => req.wait = Some(number("wait")?),
            "hold" => req.hold = Some(number("hold")?),
            "ack" => req.ack = Some(number("ack")?),
            "ver" => req.ver = Some(version(&value).ok_or_else(|| bad("ver must be major.minor"))?),
            "type" => req.terminate = value == "terminate",
            "content" => req.content = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(())
}

fn version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Writes a response body with `attrs` and Herald payloads (JSON texts).
/// Attribute values are escaped but must hold only XML 1.0 characters (the
/// hub writes numbers, hex ids and condition names there, never client text).
pub fn render<'a>(
    attrs: &[(&str, String)],
    payloads: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"<body xmlns='");
    out.extend_from_slice(BOSH_NS.as_bytes());
    out.push(b'\'');
    for (k, v) in attrs {
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"='");
        out.extend_from_slice(quick_xml::escape::escape(v.as_str()).as_bytes());
        out.push(b'\'');
    }
    let mut payloads = payloads.into_iter().peekable();
    if payloads.peek().is_none() {
        out.extend_from_slice(b"/>");
        return out;
    }
    out.push(b'>');
    for json in payloads {
        out.extend_from_slice(b"<op xmlns='");
        out.extend_from_slice(HERALD_NS.as_bytes());
        out.extend_from_slice(b"'>");
        escape_text(json, &mut out);
        out.extend_from_slice(b"</op>");
    }
    out.extend_from_slice(b"</body>");
    out
}

/// Escapes character data: `&`, `<` and `>`. JSON text never holds control
/// characters other than as escapes, but may hold U+FFFE and U+FFFF raw in
/// strings, which are not XML 1.0 characters at all (a browser's parser
/// refuses the whole body): those are written as the JSON escapes `\ufffe`
/// and `\uffff` (outside strings JSON never holds them, so the JSON means
/// the same). The result is always valid XML 1.0.
fn escape_text(text: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            // U+FFFE is EF BF BE and U+FFFF is EF BF BF in UTF-8.
            0xEF if text.get(i + 1) == Some(&0xBF)
                && matches!(text.get(i + 2), Some(0xBE | 0xBF)) =>
            {
                out.extend_from_slice(if text[i + 2] == 0xBE {
                    b"\\ufffe"
                } else {
                    b"\\uffff"
                });
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
}
