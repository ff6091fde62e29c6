//! The streaming trace writer: events in, checksummed compressed chunks out, one chunk in
//! memory at most. Each chunk is handed to the OS as soon as it is full, so a recording
//! killed at any moment keeps every chunk before the one in progress.

use std::fs::File;
use std::io::{BufWriter, Write};
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
    pub events: u64,
    pub chunks: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// Writes a .weft file, streaming.
pub struct TraceWriter {
    path: PathBuf,
    out: BufWriter<File>,
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
    failed: bool,
    /// Refuse chunks that would take the file past this many bytes.
    limit: Option<u64>,
}

impl TraceWriter {
    /// Create (or truncate) `path` and write the header; zstd level 3.
    pub fn create(path: &Path, header: &TraceHeader) -> Result<TraceWriter, TraceError> {
        Self::create_with_level(path, header, 3)
    }

    /// As [`TraceWriter::create`] with a zstd compression level (1..=19).
    pub fn create_with_level(
        path: &Path,
        header: &TraceHeader,
        level: i32,
    ) -> Result<TraceWriter, TraceError> {
        let io = |error| TraceError::Io {
            path: path.to_path_buf(),
            error,
        };
        let file = File::create(path).map_err(io)?;
        let compressor = zstd::bulk::Compressor::new(level).map_err(io)?;
        let hdr = encode_header(header).map_err(|e| TraceError::Corrupt {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
        let mut w = TraceWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, file),
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
            failed: false,
            limit: None,
        };
        let mut front = Vec::with_capacity(FILE_HEADER_LEN as usize + hdr.len() + 4);
        front.extend_from_slice(&MAGIC);
        front.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        front.extend_from_slice(&(hdr.len() as u32).to_le_bytes());
        front.extend_from_slice(&hdr);
        front.extend_from_slice(&crc32fast::hash(&hdr).to_le_bytes());
        w.put(&front)?;
        w.out.flush().map_err(io)?;
        Ok(w)
    }

    /// Stop writing (with an error) before the file would grow past `bytes`: what was
    /// written stays a readable trace.
    pub fn set_limit(&mut self, bytes: u64) {
        self.limit = Some(bytes);
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), TraceError> {
        self.out.write_all(bytes).map_err(|error| TraceError::Io {
            path: self.path.clone(),
            error,
        })?;
        self.offset += bytes.len() as u64;
        Ok(())
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
        let io = |path: &Path, error| TraceError::Io {
            path: path.to_path_buf(),
            error,
        };
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(self.raw.len()));
        self.compressor
            .compress_to_buffer(&self.raw, &mut self.compressed)
            .map_err(|e| io(&self.path, e))?;
        if let Some(limit) = self.limit {
            let need = self.offset + CHUNK_HEADER_LEN + self.compressed.len() as u64;
            if need > limit {
                return Err(TraceError::Limit {
                    path: self.path.clone(),
                    limit,
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
        self.index.push(ChunkInfo {
            offset: self.offset,
            first_step: h.first_step,
            last_step: h.last_step,
            events: h.events,
        });
        self.put(&h.to_bytes())?;
        let payload = std::mem::take(&mut self.compressed);
        let r = self.put(&payload);
        self.compressed = payload;
        r?;
        self.out.flush().map_err(|e| io(&self.path, e))?;
        self.raw.clear();
        self.state = CodecState::default();
        self.chunk_events = 0;
        self.chunk_first = None;
        Ok(())
    }

    /// Write the last chunk, the index and the footer; sync the file.
    pub fn finish(mut self) -> Result<WriteSummary, TraceError> {
        self.flush_chunk()?;
        let index_offset = self.offset;
        let mut idx = Vec::with_capacity(8 + self.index.len() * INDEX_ENTRY_LEN as usize + 4);
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
        self.put(&idx)?;
        let io = |error| TraceError::Io {
            path: self.path.clone(),
            error,
        };
        self.out.flush().map_err(io)?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|error| TraceError::Io {
                path: self.path.clone(),
                error,
            })?;
        Ok(WriteSummary {
            events: self.events,
            chunks: self.index.len() as u64,
            bytes: self.offset,
        })
    }
}

impl EventSink for TraceWriter {
    fn event(&mut self, event: &Event) -> Result<(), SinkError> {
        self.write(event).map_err(|e| SinkError(e.to_string()))
    }
}
