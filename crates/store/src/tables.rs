//! The on-disk layout: seven tables in one redb file, and the meta record.
//!
//! | table | key → value | why |
//! |---|---|---|
//! | `events` | `seq` → postcard event | the log itself, in `seq` order |
//! | `topic_index` | `(topic, seq)` → `()` | a topic's retained events, for reads and count trimming |
//! | `ids` | publisher id → `seq` | `lookup_id` and duplicate checks without a scan |
//! | `topic_counts` | topic → events indexed | count retention without counting |
//! | `topic_marks` | topic → highest `seq` count-trimmed | `Expired` answers per topic |
//! | `meta` | name → `u64` | [`Meta`] and the format version |
//! | `webhooks` | id → record bytes | webhook subscriptions ([`herald_core::WebhookStore`]) |
//!
//! Only the writer thread writes; readers see committed snapshots. The
//! `webhooks` table is created by the first write transaction that opens it,
//! so files made before it existed open unchanged (a read treats its absence
//! as empty); the format version is unchanged because older herald versions
//! never look at it.

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use crate::error::Fault;

/// Events by `seq`.
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// One entry per (topic, event) still in that topic's history.
pub(crate) const TOPIC_INDEX: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("topic_index");
/// Publisher ids of retained events.
pub(crate) const IDS: TableDefinition<&str, u64> = TableDefinition::new("ids");
/// Entries per topic in `topic_index`; a topic with none has no row.
pub(crate) const TOPIC_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("topic_counts");
/// Per-topic trim marks left by count retention.
pub(crate) const TOPIC_MARKS: TableDefinition<&str, u64> = TableDefinition::new("topic_marks");
/// Webhook subscription records (bytes the server encodes), by id.
pub(crate) const WEBHOOKS: TableDefinition<u64, &[u8]> = TableDefinition::new("webhooks");
/// The meta record, one row per field.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Version of this layout, stored under `format`; bumped on any change that
/// an older herald would misread.
const FORMAT: u64 = 1;

/// Log-wide values, cached by the writer and written back with every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Chosen at creation; part of every hub-generated id.
    pub(crate) epoch: u64,
    /// The `seq` the next event gets.
    pub(crate) next_seq: u64,
    /// Highest `seq` removed by byte or age retention (0 = none).
    pub(crate) global_mark: u64,
    /// Sum of `Event::stored_size` over retained events.
    pub(crate) bytes: u64,
}

impl Meta {
    /// Reads the meta record, or creates the tables and a fresh record (with a
    /// new random epoch) in a new file.
    pub(crate) fn load_or_create(db: &Database) -> Result<Meta, Fault> {
        if let Some(meta) = Meta::load(db)? {
            return Ok(meta);
        }
        let txn = db.begin_write()?;
        let meta = Meta {
            epoch: new_epoch(),
            next_seq: 1,
            global_mark: 0,
            bytes: 0,
        };
        {
            txn.open_table(EVENTS)?;
            txn.open_table(TOPIC_INDEX)?;
            txn.open_table(IDS)?;
            txn.open_table(TOPIC_COUNTS)?;
            txn.open_table(TOPIC_MARKS)?;
            let mut t = txn.open_table(META)?;
            t.insert("format", FORMAT)?;
            meta.store(&mut t)?;
        }
        txn.commit()?;
        Ok(meta)
    }

    /// The stored record, or `None` in a file herald never initialised.
    fn load(db: &Database) -> Result<Option<Meta>, Fault> {
        let txn = db.begin_read()?;
        let t = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(format) = t.get("format")?.map(|g| g.value()) else {
            return Ok(None);
        };
        if format != FORMAT {
            return Err(Fault::Incompatible(format!(
                "layout version {format}, this herald reads version {FORMAT}"
            )));
        }
        let field = |name: &str| -> Result<u64, Fault> {
            t.get(name)?
                .map(|g| g.value())
                .ok_or_else(|| Fault::Corrupt(format!("meta field {name} is missing")))
        };
        Ok(Some(Meta {
            epoch: field("epoch")?,
            next_seq: field("next_seq")?,
            global_mark: field("global_mark")?,
            bytes: field("bytes")?,
        }))
    }

    /// Writes every field into the open `meta` table.
    pub(crate) fn store(&self, t: &mut redb::Table<'_, &'static str, u64>) -> Result<(), Fault> {
        t.insert("epoch", self.epoch)?;
        t.insert("next_seq", self.next_seq)?;
        t.insert("global_mark", self.global_mark)?;
        t.insert("bytes", self.bytes)?;
        Ok(())
    }
}

/// What the stats need beyond [`Meta`], read inside a transaction.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Shape {
    /// Retained events.
    pub(crate) events: u64,
    /// Topics with at least one retained event.
    pub(crate) topics: u64,
    /// Lowest retained `seq` (0 when empty).
    pub(crate) first_seq: u64,
}

impl Shape {
    /// Reads the shape of the committed history.
    pub(crate) fn read(db: &Database) -> Result<Shape, Fault> {
        let txn = db.begin_read()?;
        let events = txn.open_table(EVENTS)?;
        let counts = txn.open_table(TOPIC_COUNTS)?;
        Shape::of(&events, &counts)
    }

    /// The shape of these tables (in any transaction).
    pub(crate) fn of(
        events: &impl ReadableTable<u64, &'static [u8]>,
        counts: &impl ReadableTableMetadata,
    ) -> Result<Shape, Fault> {
        Ok(Shape {
            events: events.len()?,
            topics: counts.len()?,
            first_seq: events.first()?.map_or(0, |(k, _)| k.value()),
        })
    }
}

/// A random 48-bit epoch (never 0, so it can't be mistaken for "no epoch").
fn new_epoch() -> u64 {
    (rand::random::<u64>() & ((1 << 48) - 1)).max(1)
}

/// Opens the write transaction every group uses (Immediate: `fsync` on commit).
pub(crate) fn begin_durable(db: &Database) -> Result<WriteTransaction, Fault> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    Ok(txn)
}
