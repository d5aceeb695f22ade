use http::HeaderValue;

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn found(
    h: &[(&'static str, &str)],
    q: Option<&str>,
    s: &TokenSources,
) -> Result<Option<(String, TokenSource)>, ExtractError> {
    let h = headers(h);
    extract_token(&h, q, s).map(|o| o.map(|f| (f.token.into_owned(), f.source)))
}

fn ok(t: &str, src: TokenSource) -> Result<Option<(String, TokenSource)>, ExtractError> {
    Ok(Some((t.to_string(), src)))
}

#[test]
fn bearer_header() {
    let s = TokenSources::default();
    assert_eq!(
        found(&[("authorization", "Bearer a.b.c")], None, &s),
        ok("a.b.c", TokenSource::Header)
    );
    assert_eq!(
        found(&[("authorization", "bearer   a.b.c ")], None, &s),
        ok("a.b.c", TokenSource::Header)
    );
    assert_eq!(
        found(&[("authorization", "Basic dXNlcjpwdw==")], None, &s),
        Err(ExtractError::NotBearer)
    );
    assert_eq!(
        found(&[("authorization", "Bearer")], None, &s),
        Err(ExtractError::NotBearer)
    );
    assert_eq!(
        found(&[("authorization", "Bearer  ")], None, &s),
        Err(ExtractError::NotBearer)
    );
    assert_eq!(
        found(&[("authorization", "Bearer a b")], None, &s),
        Err(ExtractError::NotBearer)
    );
    assert!(matches!(
        found(
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
            None,
            &s
        ),
        Err(ExtractError::Several(_))
    ));
    assert_eq!(found(&[], None, &s), Ok(None));
}

#[test]
fn cookie() {
    let s = TokenSources::default();
    assert_eq!(
        found(&[("cookie", "a=1; herald_token=x.y.z; b=2")], None, &s),
        ok("x.y.z", TokenSource::Cookie)
    );
    assert_eq!(
        found(
            &[("cookie", "a=1"), ("cookie", "herald_token=\"q.r.s\"")],
            None,
            &s
        ),
        ok("q.r.s", TokenSource::Cookie)
    );
    assert_eq!(found(&[("cookie", "herald_tokenx=1")], None, &s), Ok(None));
    assert_eq!(
        found(&[("cookie", "herald_token=")], None, &s),
        Err(ExtractError::Empty)
    );
    let custom = TokenSources {
        cookie: Some("mercureAuthorization".into()),
        query: false,
    };
    assert_eq!(
        found(
            &[("cookie", "herald_token=1; mercureAuthorization=m.n.o")],
            None,
            &custom
        ),
        ok("m.n.o", TokenSource::Cookie)
    );
    let none = TokenSources {
        cookie: None,
        query: false,
    };
    assert_eq!(
        found(&[("cookie", "herald_token=x")], None, &none),
        Ok(None)
    );
}

#[test]
fn query_only_when_enabled() {
    let off = TokenSources::default();
    let on = TokenSources {
        query: true,
        ..TokenSources::default()
    };
    let q = Some("topic=%2Fa&access_token=a.b%2Bc");
    assert_eq!(found(&[], q, &on), ok("a.b+c", TokenSource::Query));
    let err = found(&[], q, &off).unwrap_err();
    assert_eq!(err, ExtractError::QueryDisabled("herald_token".into()));
    assert!(err.to_string().contains("Authorization: Bearer"));
    assert_eq!(found(&[], Some("topic=a"), &off), Ok(None));
    assert!(matches!(
        found(&[], Some("access_token=a&access_token=b"), &on),
        Err(ExtractError::Several(_))
    ));
    assert_eq!(
        found(&[], Some("access_token="), &on),
        Err(ExtractError::Empty)
    );
}

#[test]
fn precedence_header_then_query_then_cookie() {
    let on = TokenSources {
        query: true,
        ..TokenSources::default()
    };
    let all = [
        ("authorization", "Bearer h.h.h"),
        ("cookie", "herald_token=c.c.c"),
    ];
    assert_eq!(
        found(&all, Some("access_token=q.q.q"), &on),
        ok("h.h.h", TokenSource::Header)
    );
    assert_eq!(
        found(&all[1..], Some("access_token=q.q.q"), &on),
        ok("q.q.q", TokenSource::Query)
    );
    assert_eq!(
        found(&all[1..], None, &on),
        ok("c.c.c", TokenSource::Cookie)
    );
    // The header wins even where URL tokens are disabled.
    assert_eq!(
        found(&all, Some("access_token=q.q.q"), &TokenSources::default()),
        ok("h.h.h", TokenSource::Header)
    );
}
