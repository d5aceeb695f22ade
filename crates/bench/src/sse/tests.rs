use super::*;

/// Every event of `chunks` fed in order, as (id, kind, data) strings.
fn parse(chunks: &[&[u8]]) -> Vec<(String, String, String)> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |e| {
            out.push((
                String::from_utf8_lossy(e.id).into_owned(),
                String::from_utf8_lossy(e.kind).into_owned(),
                String::from_utf8_lossy(e.data).into_owned(),
            ))
        });
    }
    out
}

fn ev(id: &str, kind: &str, data: &str) -> (String, String, String) {
    (id.into(), kind.into(), data.into())
}

const STREAM: &[u8] =
    b": herald\n\nretry: 3000\n\nid: e-1\ndata: one\n\nid: e-2\nevent: t\ndata: a\ndata: b\n\n";

#[test]
fn whole_stream_in_one_chunk() {
    assert_eq!(
        parse(&[STREAM]),
        vec![ev("e-1", "", "one"), ev("e-2", "t", "a\nb")]
    );
}

#[test]
fn every_split_point_gives_the_same_events() {
    let whole = parse(&[STREAM]);
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let chunks = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
            assert_eq!(parse(&chunks), whole, "split at {i} and {j}");
        }
    }
}

#[test]
fn byte_at_a_time() {
    let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
    assert_eq!(parse(&chunks), parse(&[STREAM]));
}

#[test]
fn crlf_and_cr_line_ends_even_split_between_reads() {
    let crlf = b"id: 1\r\ndata: x\r\n\r\nid: 2\rdata: y\r\r";
    let want = vec![ev("1", "", "x"), ev("2", "", "y")];
    assert_eq!(parse(&[crlf]), want);
    for i in 0..=crlf.len() {
        assert_eq!(parse(&[&crlf[..i], &crlf[i..]]), want, "split at {i}");
    }
}

#[test]
fn comments_are_counted_and_never_dispatched() {
    let mut parser = SseParser::new();
    let mut n = 0;
    parser.feed(b": hello\n:\n\n: keep-alive\n\n", |_| n += 1);
    assert_eq!(n, 0);
    assert_eq!(parser.comments(), 3);
}

#[test]
fn field_forms_follow_the_spec() {
    // No space after the colon; a field with no colon; an empty data line;
    // only one leading space is removed.
    let s = b"data:tight\n\ndata\n\ndata:  two spaces\n\ndata: a\ndata:\n\n";
    assert_eq!(
        parse(&[s]),
        vec![
            ev("", "", "tight"),
            ev("", "", ""),
            ev("", "", " two spaces"),
            ev("", "", "a\n"),
        ]
    );
}

#[test]
fn id_persists_and_event_type_resets() {
    let s = b"id: 7\nevent: x\ndata: a\n\ndata: b\n\nid\ndata: c\n\n";
    assert_eq!(
        parse(&[s]),
        vec![ev("7", "x", "a"), ev("7", "", "b"), ev("", "", "c")]
    );
}

#[test]
fn event_without_data_is_not_dispatched_and_unfinished_event_waits() {
    assert_eq!(parse(&[b"id: 1\nevent: x\n\n"]), vec![]);
    assert_eq!(parse(&[b"data: pending\n"]), vec![]);
    assert_eq!(parse(&[b"data: pending"]), vec![]);
}
