//! [`StoreError`]: why the store could not open or write, always naming the
//! file or directory involved so an operator knows where to look.

use std::io;
use std::path::{Path, PathBuf};

/// Why opening or writing the embedded log failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another open [`crate::RedbLog`] in this one) holds
    /// the data dir's lock. Two writers would corrupt the history.
    #[error("data dir {} is in use by another herald process", dir.display())]
    InUse {
        /// The data dir.
        dir: PathBuf,
    },
    /// The history file is damaged or is not a herald history file.
    #[error(
        "history file {} is corrupt or not a herald history file: {detail}; \
         move it away to start with an empty history",
        path.display()
    )]
    Corrupt {
        /// The history file.
        path: PathBuf,
        /// What was found wrong.
        detail: String,
    },
    /// The history file was written by another version of herald (or redb)
    /// whose format this one cannot read.
    #[error("history file {} has an incompatible format: {detail}", path.display())]
    Incompatible {
        /// The history file.
        path: PathBuf,
        /// Which part of the format differs.
        detail: String,
    },
    /// The operating system refused a file operation (permissions, disk full,
    /// device errors).
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The database failed in a way none of the other variants describes
    /// (for example, it refuses to work after an earlier I/O error).
    #[error("history store {} failed: {detail}", path.display())]
    Database {
        /// The history file.
        path: PathBuf,
        /// The database's description of the failure.
        detail: String,
    },
    /// A write the caller waited for (such as a trim) failed; the message is
    /// the failure the writer met, naming the file.
    #[error("{0}")]
    WriteFailed(String),
    /// The writer thread could not be started.
    #[error("could not start the history writer thread: {0}")]
    Spawn(#[source] io::Error),
    /// The store was closed; nothing more can be written.
    #[error("the history store is closed")]
    Closed,
}

/// A failure inside the store, before it is tied to a path.
#[derive(Debug)]
pub(crate) enum Fault {
    /// redb reported an error.
    Db(redb::Error),
    /// Stored bytes do not decode, or the tables disagree with each other.
    Corrupt(String),
    /// The file holds a herald format this version does not know.
    Incompatible(String),
}

macro_rules! fault_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Fault {
            fn from(e: $t) -> Fault {
                Fault::Db(e.into())
            }
        }
    )*};
}

fault_from!(
    redb::Error,
    redb::DatabaseError,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl StoreError {
    /// Describes `fault`, which happened on the history file `path` in `dir`.
    pub(crate) fn from_fault(dir: &Path, path: &Path, fault: Fault) -> StoreError {
        let path = path.to_path_buf();
        match fault {
            Fault::Corrupt(detail) => StoreError::Corrupt { path, detail },
            Fault::Incompatible(detail) => StoreError::Incompatible { path, detail },
            Fault::Db(e) => match e {
                redb::Error::DatabaseAlreadyOpen => StoreError::InUse {
                    dir: dir.to_path_buf(),
                },
                // redb reports a file that isn't a database as invalid data.
                redb::Error::Io(source) if source.kind() == io::ErrorKind::InvalidData => {
                    StoreError::Corrupt {
                        path,
                        detail: source.to_string(),
                    }
                }
                redb::Error::Io(source) => StoreError::Io { path, source },
                redb::Error::Corrupted(detail) => StoreError::Corrupt { path, detail },
                e @ (redb::Error::UpgradeRequired(_)
                | redb::Error::LockProtocolMismatch
                | redb::Error::TableTypeMismatch { .. }
                | redb::Error::TypeDefinitionChanged { .. }
                | redb::Error::TableIsMultimap(_)
                | redb::Error::TableIsNotMultimap(_)) => StoreError::Incompatible {
                    path,
                    detail: e.to_string(),
                },
                e => StoreError::Database {
                    path,
                    detail: e.to_string(),
                },
            },
        }
    }
}
