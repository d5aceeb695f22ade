//! A real HTTP server in the test process that plays the WebSub subscriber
//! (answers verifications, records deliveries) and the publisher (serves
//! topic content with `Link` headers), as websub.rocks does. hyper on
//! 127.0.0.1:0, on its own runtime thread; the tests stay blocking.
#![allow(dead_code, unreachable_pub)]
// Wall-clock waits: the hub is another process.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response, StatusCode};

/// How deliveries (POSTs) are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Ok,
    /// This status.
    Status(u16),
    /// Never answer (the hub's timeout must cut it).
    Hang,
}

/// How verifications (GETs with `hub.challenge`) are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Echo the challenge (after websub.rocks' checks; 404 if one fails).
    Echo,
    /// 404, as a subscriber that did not ask.
    NotFound,
    /// 200 with another body.
    WrongBody,
}

/// One received delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the receiver saw and how it answers.
pub struct State {
    pub answer: Answer,
    pub verify: Verify,
    /// Every verification request's query parameters.
    pub verifications: Vec<HashMap<String, String>>,
    /// Verification requests that failed websub.rocks' checks.
    pub bad_verifications: Vec<String>,
    /// Every delivery attempt, answered or not.
    pub attempts: usize,
    /// Deliveries answered 2xx, in arrival order.
    pub deliveries: Vec<Delivery>,
    /// Topic content served at `/topic/...`: path → (content type, body).
    pub topics: HashMap<String, (String, String)>,
    /// The hub URL the topic pages advertise.
    pub hub_url: String,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(State {
            answer: Answer::Ok,
            verify: Verify::Echo,
            verifications: Vec::new(),
            bad_verifications: Vec::new(),
            attempts: 0,
            deliveries: Vec::new(),
            topics: HashMap::new(),
            hub_url: String::new(),
        }));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| serve(req, st.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            state,
            _rt: rt,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_answer(&self, a: Answer) {
        self.state.lock().unwrap().answer = a;
    }

    pub fn set_verify(&self, v: Verify) {
        self.state.lock().unwrap().verify = v;
    }

    /// Serves `body` as `content_type` at `path` (a topic URL).
    pub fn set_topic(&self, path: &str, content_type: &str, body: &str) {
        self.state
            .lock()
            .unwrap()
            .topics
            .insert(path.into(), (content_type.into(), body.into()));
    }

    /// Waits (bounded) until `cond` holds on the state; panics with `what` otherwise.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&State) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = cond(&self.state.lock().unwrap()) {
                return v;
            }
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Deliveries to `path` so far.
    pub fn deliveries_to(&self, path: &str) -> Vec<Delivery> {
        self.state
            .lock()
            .unwrap()
            .deliveries
            .iter()
            .filter(|d| d.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `n` deliveries reached `path`, and returns them.
    pub fn wait_deliveries(&self, path: &str, n: usize) -> Vec<Delivery> {
        self.wait_for(&format!("{n} deliveries to {path}"), super::WAIT, |s| {
            let got: Vec<Delivery> = s
                .deliveries
                .iter()
                .filter(|d| d.path == path)
                .cloned()
                .collect();
            (got.len() >= n).then_some(got)
        })
    }

    /// Waits until `n` verifications arrived, and returns them.
    pub fn wait_verifications(&self, n: usize) -> Vec<HashMap<String, String>> {
        self.wait_for(&format!("{n} verifications"), super::WAIT, |s| {
            (s.verifications.len() >= n).then(|| s.verifications.clone())
        })
    }
}

fn text(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    r
}

async fn serve(
    req: Request<Incoming>,
    st: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if req.method() == hyper::Method::GET && query.contains_key("hub.challenge") {
        return Ok(verification(&st, query));
    }
    if req.method() == hyper::Method::GET {
        let s = st.lock().unwrap();
        return Ok(match s.topics.get(&path) {
            Some((ct, body)) => {
                let mut r = text(200, ct, body.clone());
                let link = format!(
                    "<{}>; rel=\"hub\", <http://{}{}>; rel=\"self\"",
                    s.hub_url,
                    req.headers()
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or(""),
                    path
                );
                r.headers_mut().insert("link", link.parse().unwrap());
                r
            }
            None => text(404, "text/plain", "no such topic\n".into()),
        });
    }
    let headers = req.headers().clone();
    let full = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let answer = {
        let mut s = st.lock().unwrap();
        s.attempts += 1;
        if s.answer == Answer::Ok {
            s.deliveries.push(Delivery {
                path: full.clone(),
                headers,
                body,
            });
        }
        s.answer
    };
    Ok(match answer {
        Answer::Ok => text(202, "text/plain", String::new()),
        Answer::Status(code) => text(code, "text/plain", "not now\n".into()),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            text(500, "text/plain", String::new())
        }
    })
}

/// websub.rocks' subscriber checks, then the configured answer.
fn verification(st: &Mutex<State>, q: HashMap<String, String>) -> Response<Full<Bytes>> {
    let mut s = st.lock().unwrap();
    s.verifications.push(q.clone());
    let mode = q.get("hub.mode").map(String::as_str);
    let problem = match mode {
        Some("subscribe") if !q.contains_key("hub.lease_seconds") => {
            Some("hub.lease_seconds missing on subscribe")
        }
        Some("subscribe" | "unsubscribe") => None,
        _ => Some("hub.mode is not subscribe or unsubscribe"),
    }
    .or_else(|| (!q.contains_key("hub.topic")).then_some("hub.topic missing"));
    if let Some(p) = problem {
        s.bad_verifications.push(p.to_string());
        return text(404, "text/plain", format!("{p}\n"));
    }
    match s.verify {
        Verify::Echo => text(200, "application/octet-stream", q["hub.challenge"].clone()),
        Verify::NotFound => text(404, "text/plain", "I did not ask for this\n".into()),
        Verify::WrongBody => text(200, "text/plain", "not the challenge".into()),
    }
}
