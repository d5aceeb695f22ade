//! [`RedisRecords`]: webhook subscription records in Redis, shared by every
//! node of the cluster.
//!
//! Two hashes under the log's hash tag: `{name}:webhooks` (id → record bytes)
//! and `{name}:webhooks:rev` (id → revision, raised by every write). Each
//! operation is one Lua script, so a compare-and-set (`put_if`: write only if
//! the revision is still the one read) is atomic across nodes. The lease that
//! makes one node deliver a subscription lives in the record itself, so
//! taking, renewing and releasing it, and writing the delivery cursor, are
//! all the same fenced write.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use herald_core::{BoxFuture, RecordError, RecordOp, WebhookStore};
use redis::aio::ConnectionManager;
use redis::{Script, Value};

use super::{connect, timed};
use crate::{BrokerError, BrokerOptions};

/// `KEYS[1]` records, `KEYS[2]` revisions; `ARGV`: `P id bytes` or `D id`,
/// repeated. A put raises the revision; a delete removes both (`PUT_IF`
/// checks that the record exists, so a stale revision never revives it).
static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local i = 1
while i <= #ARGV do
  if ARGV[i] == 'P' then
    redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 2])
    redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1)
    i = i + 3
  else
    redis.call('HDEL', KEYS[1], ARGV[i + 1])
    redis.call('HDEL', KEYS[2], ARGV[i + 1])
    i = i + 2
  end
end
return 1
"#,
    )
});

/// `ARGV`: id, expected revision, bytes. Returns the new revision, or 0 when
/// the record is gone or at another revision.
static PUT_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local rev = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if rev ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
"#,
    )
});

/// `ARGV`: id. Returns `{bytes, revision}` or an empty array.
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {} end
return {v, redis.call('HGET', KEYS[2], ARGV[1]) or '0'}
"#,
    )
});

/// Webhook records in Redis (see the module doc).
pub struct RedisRecords {
    conn: ConnectionManager,
    records: String,
    revisions: String,
    timeout: Duration,
}

impl RedisRecords {
    /// Connects (its own connection, beside the log's).
    pub async fn open(opts: &BrokerOptions) -> Result<RedisRecords, BrokerError> {
        let unreachable = crate::unreachable_error(opts);
        let client =
            redis::Client::open(opts.url.as_str()).map_err(|e| unreachable(e.to_string()))?;
        let conn = connect(&client, opts, opts.timeout)
            .await
            .map_err(&unreachable)?;
        let name = &opts.stream;
        Ok(RedisRecords {
            conn,
            records: format!("{{{name}}}:webhooks"),
            revisions: format!("{{{name}}}:webhooks:rev"),
            timeout: opts.timeout,
        })
    }

    async fn run(&self, inv: redis::ScriptInvocation<'_>) -> Result<Value, RecordError> {
        timed(self.timeout, inv.invoke_async(&mut self.conn.clone()))
            .await
            .map_err(RecordError)
    }
}

fn key(id: u64) -> String {
    format!("{id:016x}")
}

fn bytes_of(v: &Value) -> Option<Bytes> {
    match v {
        Value::BulkString(b) => Some(Bytes::copy_from_slice(b)),
        Value::SimpleString(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
        _ => None,
    }
}

fn number_of(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(&bytes_of(other)?).ok()?.parse().ok(),
    }
}

fn unexpected(v: &Value) -> RecordError {
    RecordError(format!("redis: unexpected reply {v:?}"))
}

impl WebhookStore for RedisRecords {
    fn load(&self) -> BoxFuture<'_, Result<Vec<(u64, Bytes)>, RecordError>> {
        Box::pin(async move {
            let cmd = redis::cmd("HGETALL").arg(&self.records).clone();
            let v: Value = timed(self.timeout, cmd.query_async(&mut self.conn.clone()))
                .await
                .map_err(RecordError)?;
            let pairs: Vec<(&Value, &Value)> = match &v {
                Value::Array(items) if items.len() % 2 == 0 => {
                    items.chunks(2).map(|p| (&p[0], &p[1])).collect()
                }
                Value::Map(m) => m.iter().map(|(k, b)| (k, b)).collect(),
                _ => return Err(unexpected(&v)),
            };
            let mut out = Vec::with_capacity(pairs.len());
            for (k, b) in pairs {
                let id = bytes_of(k)
                    .and_then(|k| u64::from_str_radix(std::str::from_utf8(&k).ok()?, 16).ok());
                match (id, bytes_of(b)) {
                    (Some(id), Some(b)) => out.push((id, b)),
                    _ => return Err(unexpected(&v)),
                }
            }
            Ok(out)
        })
    }

    fn apply(&self, ops: Vec<RecordOp>) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async move {
            if ops.is_empty() {
                return Ok(());
            }
            let mut inv = APPLY.prepare_invoke();
            inv.key(&self.records).key(&self.revisions);
            for op in ops {
                match op {
                    RecordOp::Put(id, bytes) => inv.arg("P").arg(key(id)).arg(bytes.as_ref()),
                    RecordOp::Delete(id) => inv.arg("D").arg(key(id)),
                };
            }
            self.run(inv).await.map(|_| ())
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn get(&self, id: u64) -> BoxFuture<'_, Result<Option<(u64, Bytes)>, RecordError>> {
        Box::pin(async move {
            let mut inv = GET.prepare_invoke();
            inv.key(&self.records).key(&self.revisions).arg(key(id));
            let v = self.run(inv).await?;
            match &v {
                Value::Array(items) if items.is_empty() => Ok(None),
                Value::Array(items) => match items.as_slice() {
                    [b, r] => match (bytes_of(b), number_of(r)) {
                        (Some(b), Some(r)) => Ok(Some((r, b))),
                        _ => Err(unexpected(&v)),
                    },
                    _ => Err(unexpected(&v)),
                },
                _ => Err(unexpected(&v)),
            }
        })
    }

    fn put_if(
        &self,
        id: u64,
        rev: u64,
        bytes: Bytes,
    ) -> BoxFuture<'_, Result<Option<u64>, RecordError>> {
        Box::pin(async move {
            let mut inv = PUT_IF.prepare_invoke();
            inv.key(&self.records)
                .key(&self.revisions)
                .arg(key(id))
                .arg(rev)
                .arg(bytes.as_ref());
            let v = self.run(inv).await?;
            match number_of(&v) {
                Some(0) => Ok(None),
                Some(n) => Ok(Some(n)),
                None => Err(unexpected(&v)),
            }
        })
    }
}
