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

mod codec;
mod event;
mod format;
mod header;
mod reader;
mod writer;

use std::path::PathBuf;

pub use codec::CodecError;
pub use event::*;
pub use format::{ChunkInfo, FORMAT_VERSION, MAGIC};
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
    #[error("{}: trace format version {found} is not supported (this weft reads version {FORMAT_VERSION})", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{}: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{}: the trace reached its size limit of {limit} bytes (--max-trace-bytes); it ends there", path.display())]
    Limit { path: PathBuf, limit: u64 },
}

#[cfg(test)]
mod tests;
