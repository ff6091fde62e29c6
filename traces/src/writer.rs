//! The streaming trace writer: events in, checksummed compressed chunks out, one chunk in
//! memory at most. Each chunk is handed to the OS as soon as it is full, so a recording
//! killed at any moment keeps every chunk before the one in progress.
//!
//! A write that fails (disk full, file size limit) or a chunk that would pass the size
//! limit ends the trace at the last complete chunk: the file is cut back to it, and
//! [`TraceWriter::finish`] still adds the index of the chunks kept when there is room, so
//! what was written stays a trace that opens and replays up to there.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::codec::{encode_header, CodecState};
use crate::event::{Event, EventSink, SinkError};
use crate::format::*;
use crate::{TraceError, TraceHeader};

/// Events per chunk before it is written.
pub const CHUNK_EVENTS: u32 = 1 << 16;
/// Uncompressed bytes per chunk before it is written.
const CHUNK_BYTES: usize = 1 << 20;

/// What a finished trace holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    /// Events in the file (after a failed write: those of the chunks kept).
    pub events: u64,
    pub chunks: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Whether the index and footer were written (a trace whose writing failed gets them
    /// too, when they fit).
    pub indexed: bool,
}

/// Bytes the index and footer take for `chunks` chunks.
fn index_len(chunks: u64) -> u64 {
    8 + chunks * INDEX_ENTRY_LEN + 4 + FOOTER_LEN
}

/// Writes a .weft file, streaming.
pub struct TraceWriter {
    path: PathBuf,
    out: File,
    /// File size: the end of the header and of every complete chunk written.
    offset: u64,
    raw: Vec<u8>,
    compressed: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
    state: CodecState,
    chunk_events: u32,
    chunk_first: Option<u64>,
    chunk_last: u64,
    index: Vec<ChunkInfo>,
    events: u64,
    /// Events in the chunks written.
    kept_events: u64,
    failed: bool,
    /// Refuse chunks that would take the file past this many bytes.
    limit: Option<u64>,
}

impl TraceWriter {
    /// Create (or truncate) `path` and write the header; zstd level 3.
    pub fn create(path: &Path, header: &TraceHeader) -> Result<TraceWriter, TraceError> {
        Self::create_limited(path, header, None)
    }

    /// As [`TraceWriter::create`], refusing chunks that would take the file (with its
    /// index) past `limit` bytes; a limit the header alone passes is an error at once.
    pub fn create_limited(
        path: &Path,
        header: &TraceHeader,
        limit: Option<u64>,
    ) -> Result<TraceWriter, TraceError> {
        Self::create_with_level(path, header, 3, limit)
    }

    /// As [`TraceWriter::create_limited`] with a zstd compression level (1..=19).
    pub fn create_with_level(
        path: &Path,
        header: &TraceHeader,
        level: i32,
        limit: Option<u64>,
    ) -> Result<TraceWriter, TraceError> {
        Self::create_versioned(path, header, level, limit, FORMAT_VERSION)
    }

    /// A trace as an older weft (format `version`, 3 or 4) wrote it: its header layout,
    /// which can only say `Sharing::All`; the caller writes only events that format has.
    /// For compatibility tests.
    #[doc(hidden)]
    pub fn create_as_version(
        path: &Path,
        header: &TraceHeader,
        version: u32,
    ) -> Result<TraceWriter, TraceError> {
        Self::create_versioned(path, header, 3, None, version)
    }

    fn create_versioned(
        path: &Path,
        header: &TraceHeader,
        level: i32,
        limit: Option<u64>,
        version: u32,
    ) -> Result<TraceWriter, TraceError> {
        let io = |error| TraceError::Io {
            path: path.to_path_buf(),
            error,
        };
        let hdr = encode_header(header, version).map_err(|e| TraceError::Corrupt {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
        let front_len = FILE_HEADER_LEN + hdr.len() as u64 + 4;
        if let Some(limit) = limit.filter(|&l| front_len + index_len(0) > l) {
            return Err(TraceError::TooSmall {
                path: path.to_path_buf(),
                limit,
                header: front_len + index_len(0),
            });
        }
        let file = File::create(path).map_err(io)?;
        let compressor = zstd::bulk::Compressor::new(level).map_err(io)?;
        let mut w = TraceWriter {
            path: path.to_path_buf(),
            out: file,
            offset: 0,
            raw: Vec::with_capacity(CHUNK_BYTES + 4096),
            compressed: Vec::new(),
            compressor,
            state: CodecState::default(),
            chunk_events: 0,
            chunk_first: None,
            chunk_last: 0,
            index: Vec::new(),
            events: 0,
            kept_events: 0,
            failed: false,
            limit,
        };
        let mut front = Vec::with_capacity(FILE_HEADER_LEN as usize + hdr.len() + 4);
        front.extend_from_slice(&MAGIC);
        front.extend_from_slice(&version.to_le_bytes());
        front.extend_from_slice(&(hdr.len() as u32).to_le_bytes());
        front.extend_from_slice(&hdr);
        front.extend_from_slice(&crc32fast::hash(&hdr).to_le_bytes());
        w.out.write_all(&front).map_err(io)?;
        w.offset = front.len() as u64;
        Ok(w)
    }

    /// Write `parts` at the end of the file. On failure, cut the file back to where it was
    /// (the end of the last complete chunk), so no partial chunk is left behind.
    fn put(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        let r = parts.iter().try_for_each(|p| self.out.write_all(p));
        match r {
            Ok(()) => {
                self.offset += parts.iter().map(|p| p.len() as u64).sum::<u64>();
                Ok(())
            }
            Err(e) => {
                let _ = self.out.set_len(self.offset);
                let _ = self.out.seek(SeekFrom::Start(self.offset));
                Err(e)
            }
        }
    }

    /// The step of the last event kept, if any.
    fn kept_step(&self) -> Option<u64> {
        self.index.last().map(|c| c.last_step)
    }

    /// Append one event.
    pub fn write(&mut self, e: &Event) -> Result<(), TraceError> {
        if self.failed {
            return Err(TraceError::Corrupt {
                path: self.path.clone(),
                what: "an earlier write failed".into(),
            });
        }
        self.state
            .encode(e, &mut self.raw)
            .map_err(|err| TraceError::Corrupt {
                path: self.path.clone(),
                what: err.to_string(),
            })?;
        if let Some(s) = e.step() {
            self.chunk_first.get_or_insert(s.0);
            self.chunk_last = s.0;
        }
        self.chunk_events += 1;
        self.events += 1;
        if self.raw.len() > MAX_CHUNK_RAW as usize {
            // No reader would accept the chunk: refuse the event (writers of weft keep
            // every event far smaller: console output comes in pieces).
            self.failed = true;
            return Err(TraceError::Corrupt {
                path: self.path.clone(),
                what: format!(
                    "an event of {} bytes is too large for a trace chunk",
                    self.raw.len()
                ),
            });
        }
        if self.chunk_events >= CHUNK_EVENTS || self.raw.len() >= CHUNK_BYTES {
            let r = self.flush_chunk();
            self.failed = r.is_err();
            r?;
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), TraceError> {
        if self.chunk_events == 0 {
            return Ok(());
        }
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(self.raw.len()));
        self.compressor
            .compress_to_buffer(&self.raw, &mut self.compressed)
            .map_err(|error| TraceError::Io {
                path: self.path.clone(),
                error,
            })?;
        if let Some(limit) = self.limit {
            let need = self.offset
                + CHUNK_HEADER_LEN
                + self.compressed.len() as u64
                + index_len(self.index.len() as u64 + 1);
            if need > limit {
                return Err(TraceError::Limit {
                    path: self.path.clone(),
                    limit,
                    chunks: self.index.len() as u64,
                    last_step: self.kept_step(),
                });
            }
        }
        let first = self.chunk_first.unwrap_or(self.chunk_last);
        let h = ChunkHeader {
            payload_len: self.compressed.len() as u32,
            crc32: crc32fast::hash(&self.compressed),
            raw_len: self.raw.len() as u32,
            events: self.chunk_events,
            first_step: first,
            last_step: self.chunk_last.max(first),
        };
        let at = self.offset;
        let payload = std::mem::take(&mut self.compressed);
        let r = self.put(&[&h.to_bytes(), &payload]);
        self.compressed = payload;
        if let Err(error) = r {
            return Err(TraceError::Write {
                path: self.path.clone(),
                error,
                chunks: self.index.len() as u64,
                last_step: self.kept_step(),
            });
        }
        self.index.push(ChunkInfo {
            offset: at,
            first_step: h.first_step,
            last_step: h.last_step,
            events: h.events,
        });
        self.kept_events += h.events as u64;
        self.raw.clear();
        self.state = CodecState::default();
        self.chunk_events = 0;
        self.chunk_first = None;
        Ok(())
    }

    /// Write the last chunk, the index and the footer; sync the file. After an earlier
    /// failed write (reported by [`TraceWriter::write`]) the events not yet written are
    /// dropped, and the index of the chunks kept is added if it fits (`indexed` says).
    pub fn finish(mut self) -> Result<WriteSummary, TraceError> {
        if !self.failed {
            if let Err(e) = self.flush_chunk() {
                // The trace ends at its last complete chunk; still try to index it.
                let _ = self.write_index();
                return Err(e);
            }
        }
        let indexed = match self.write_index() {
            Ok(()) => true,
            Err(_) if self.failed => false,
            Err(error) => {
                return Err(TraceError::Write {
                    path: self.path.clone(),
                    error,
                    chunks: self.index.len() as u64,
                    last_step: self.kept_step(),
                })
            }
        };
        let _ = self.out.sync_all();
        Ok(WriteSummary {
            events: self.kept_events,
            chunks: self.index.len() as u64,
            bytes: self.offset,
            indexed,
        })
    }

    /// The index of the chunks written and the footer (cut back off again if they do not
    /// fit, leaving a trace that readers scan).
    fn write_index(&mut self) -> std::io::Result<()> {
        let index_offset = self.offset;
        let mut idx = Vec::with_capacity(index_len(self.index.len() as u64) as usize);
        idx.extend_from_slice(&INDEX_MAGIC);
        idx.extend_from_slice(&(self.index.len() as u32).to_le_bytes());
        let body_start = idx.len();
        for c in &self.index {
            idx.extend_from_slice(&c.offset.to_le_bytes());
            idx.extend_from_slice(&c.first_step.to_le_bytes());
            idx.extend_from_slice(&c.last_step.to_le_bytes());
            idx.extend_from_slice(&c.events.to_le_bytes());
        }
        let crc = crc32fast::hash(&idx[body_start..]);
        idx.extend_from_slice(&crc.to_le_bytes());
        idx.extend_from_slice(&index_offset.to_le_bytes());
        idx.extend_from_slice(&END_MAGIC);
        self.put(&[&idx])
    }
}

impl EventSink for TraceWriter {
    fn event(&mut self, event: &Event) -> Result<(), SinkError> {
        self.write(event).map_err(|e| SinkError(e.to_string()))
    }
}
