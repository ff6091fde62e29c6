//! weft-trace: the .weft trace format.
//!
//! A trace is one self-contained file: a header (format version, weft version, machine
//! options, the guest ELF embedded and hashed), then independently zstd-compressed chunks of
//! events, each framed with its length and a CRC-32, then an index of chunks by step and a
//! footer. [`TraceWriter`] streams events to a file holding at most one chunk in memory;
//! [`TraceReader`] validates a file before trusting it, streams its events, and reads what
//! survives of a trace cut short. The byte layout is specified in docs/trace-format.md.
//!
//! The event schema ([`Event`]) and the [`EventSink`] trait are the vocabulary every other
//! weft crate speaks.

mod bytes;
mod codec;
mod event;
mod format;
mod header;
mod reader;
mod writer;

use std::path::PathBuf;

pub use codec::CodecError;
pub use event::*;
pub use format::{ChunkInfo, FORMAT_VERSION, MAGIC, OLDEST_READABLE_VERSION};
pub use header::*;
pub use reader::{Events, TraceReader};
pub use writer::{TraceWriter, WriteSummary, CHUNK_EVENTS};

/// Why a trace cannot be read or written. Each message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The io error is part of the message, not a chained source: printing the chain
    /// (`{:#}`) would repeat it.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not a weft trace ({why})", path.display())]
    NotATrace { path: PathBuf, why: String },
    #[error("{}: {}", path.display(), version_message(*found))]
    Version { path: PathBuf, found: u32 },
    #[error("{}: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{}: the trace reached its size limit of {limit} bytes (--max-trace-bytes); {}", path.display(), kept(*chunks, *last_step))]
    Limit {
        path: PathBuf,
        limit: u64,
        /// Chunks written before the limit, and the step of their last event.
        chunks: u64,
        last_step: Option<u64>,
    },
    #[error("{}: a size limit of {limit} bytes (--max-trace-bytes) is smaller than the trace header and index alone ({header} bytes)", path.display())]
    TooSmall {
        path: PathBuf,
        limit: u64,
        header: u64,
    },
    /// Writing a chunk failed (disk full, file too large): the file ends at the last
    /// complete chunk.
    #[error("{}: writing the trace failed: {error}; {}", path.display(), kept(*chunks, *last_step))]
    Write {
        path: PathBuf,
        error: std::io::Error,
        chunks: u64,
        last_step: Option<u64>,
    },
}

/// What a trace whose writing stopped early still holds.
fn kept(chunks: u64, last_step: Option<u64>) -> String {
    match (chunks, last_step) {
        (0, _) | (_, None) => "no events were written: the trace holds its header only".into(),
        (n, Some(s)) => format!(
            "the trace ends there: its {n} complete chunk(s) (events up to step {s}) open and replay"
        ),
    }
}

/// Why a trace of format version `found` cannot be read, naming both versions and what
/// to do (docs/trace-format.md, "Compatibility").
fn version_message(found: u32) -> String {
    if found < OLDEST_READABLE_VERSION {
        format!(
            "trace format version {found} is older than the version this weft reads \
             (versions {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}); replay it with the weft that recorded it, or record it again"
        )
    } else {
        format!(
            "trace format version {found} is newer than the version this weft reads \
             (version {FORMAT_VERSION}); it was written by a newer weft: upgrade to read it"
        )
    }
}

#[cfg(test)]
mod tests;
