use super::*;

fn decode(chunks: &[&[u8]]) -> Result<(Vec<u8>, bool), ChunkedError> {
    let mut d = Dechunker::default();
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, |b| out.extend_from_slice(b))?;
    }
    Ok((out, d.is_done()))
}

#[test]
fn decodes_at_every_split_point() {
    let body = b"5\r\nhello\r\nA;ext=1\r\n, world!!!\r\n0\r\n\r\n";
    for i in 0..=body.len() {
        let (out, done) = decode(&[&body[..i], &body[i..]]).unwrap();
        assert_eq!(out, b"hello, world!!!", "split at {i}");
        assert!(done);
    }
}

#[test]
fn an_endless_body_is_not_done() {
    let (out, done) = decode(&[b"3\r\nabc\r\n"]).unwrap();
    assert_eq!((out.as_slice(), done), (&b"abc"[..], false));
}

#[test]
fn garbage_is_an_error() {
    assert_eq!(decode(&[b"zz\r\n"]), Err(ChunkedError));
    assert_eq!(decode(&[b"1\r\nab\r\n"]), Err(ChunkedError));
}
