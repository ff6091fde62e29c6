//! The trace reader: validates what it can before trusting it, streams events chunk by
//! chunk, and reads what survives of a trace cut short.
//!
//! A complete trace ends with an index and a footer. When they are missing or damaged (the
//! recording was killed), the reader scans chunks from the start instead and keeps every
//! chunk up to the first damaged one, with a warning. In a complete trace a damaged chunk
//! is an error: something changed the file after it was written.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::codec::{decode_header, CodecState};
use crate::event::Event;
use crate::format::*;
use crate::{TraceError, TraceHeader};

/// An open trace.
pub struct TraceReader {
    path: PathBuf,
    file: BufReader<File>,
    len: u64,
    header: TraceHeader,
    chunks: Vec<ChunkInfo>,
    /// Whether the index and footer were found (a complete trace).
    indexed: bool,
    warning: Option<String>,
    /// The file's format version (`OLDEST_READABLE_VERSION..=FORMAT_VERSION`).
    version: u32,
}

fn read_exact_at(f: &mut BufReader<File>, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}

impl TraceReader {
    /// Open and validate `path`: magic, version, header checksum, then index or chunk scan.
    pub fn open(path: &Path) -> Result<TraceReader, TraceError> {
        let p = path.to_path_buf();
        let io = |error| TraceError::Io {
            path: p.clone(),
            error,
        };
        let corrupt = |what: String| TraceError::Corrupt {
            path: p.clone(),
            what,
        };
        let f = File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let mut file = BufReader::with_capacity(1 << 16, f);
        if len == 0 {
            return Err(TraceError::NotATrace {
                path: p,
                why: "the file is empty".into(),
            });
        }
        let mut front = [0u8; FILE_HEADER_LEN as usize];
        let got = read_up_to(&mut file, &mut front).map_err(io)?;
        if got < 8 || front[..8] != MAGIC {
            return Err(TraceError::NotATrace {
                path: p,
                why: "bad magic".into(),
            });
        }
        if got < FILE_HEADER_LEN as usize {
            return Err(corrupt("the trace header is cut short".into()));
        }
        let version = u32::from_le_bytes([front[8], front[9], front[10], front[11]]);
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(TraceError::Version {
                path: p,
                found: version,
            });
        }
        let hlen = u32::from_le_bytes([front[12], front[13], front[14], front[15]]) as u64;
        if hlen > MAX_HEADER as u64 || FILE_HEADER_LEN + hlen + 4 > len {
            return Err(corrupt(format!(
                "the trace header ({hlen} bytes) is cut short or damaged"
            )));
        }
        let mut hbytes = vec![0u8; hlen as usize + 4];
        file.read_exact(&mut hbytes).map_err(io)?;
        let (hbody, hcrc) = hbytes.split_at(hlen as usize);
        if crc32fast::hash(hbody).to_le_bytes() != hcrc {
            return Err(corrupt(
                "the trace header is corrupt (checksum mismatch)".into(),
            ));
        }
        let header = decode_header(hbody, version)
            .map_err(|e| corrupt(format!("the trace header does not decode: {e}")))?;
        let data_start = FILE_HEADER_LEN + hlen + 4;
        let mut r = TraceReader {
            path: p.clone(),
            file,
            len,
            header,
            chunks: Vec::new(),
            version,
            indexed: false,
            warning: None,
        };
        match r.read_index(data_start) {
            Some(chunks) => {
                r.chunks = chunks;
                r.indexed = true;
            }
            None => r
                .scan(data_start)
                .map_err(|error| TraceError::Io { path: p, error })?,
        }
        Ok(r)
    }

    /// The index through the footer, if both are intact and consistent.
    fn read_index(&mut self, data_start: u64) -> Option<Vec<ChunkInfo>> {
        if self.len < data_start + FOOTER_LEN + 12 {
            return None;
        }
        let mut foot = [0u8; FOOTER_LEN as usize];
        read_exact_at(&mut self.file, self.len - FOOTER_LEN, &mut foot).ok()?;
        if foot[8..] != END_MAGIC {
            return None;
        }
        let at = u64::from_le_bytes(foot[..8].try_into().ok()?);
        if at < data_start || at + 12 > self.len - FOOTER_LEN {
            return None;
        }
        let mut head = [0u8; 8];
        read_exact_at(&mut self.file, at, &mut head).ok()?;
        if head[..4] != INDEX_MAGIC {
            return None;
        }
        let n = u32::from_le_bytes(head[4..8].try_into().ok()?) as u64;
        if at + 8 + n * INDEX_ENTRY_LEN + 4 != self.len - FOOTER_LEN {
            return None;
        }
        let mut body = vec![0u8; (n * INDEX_ENTRY_LEN + 4) as usize];
        self.file.read_exact(&mut body).ok()?;
        let (entries, crc) = body.split_at(body.len() - 4);
        if crc32fast::hash(entries).to_le_bytes() != crc {
            return None;
        }
        let chunks: Vec<ChunkInfo> = entries
            .chunks_exact(INDEX_ENTRY_LEN as usize)
            .map(|e| ChunkInfo {
                offset: u64::from_le_bytes(e[0..8].try_into().unwrap_or_default()),
                first_step: u64::from_le_bytes(e[8..16].try_into().unwrap_or_default()),
                last_step: u64::from_le_bytes(e[16..24].try_into().unwrap_or_default()),
                events: u32::from_le_bytes(e[24..28].try_into().unwrap_or_default()),
            })
            .collect();
        chunks
            .iter()
            .all(|c| c.offset >= data_start && c.offset < at)
            .then_some(chunks)
    }

    /// No usable index: walk the chunks, verifying each, and stop at the first bad one.
    fn scan(&mut self, data_start: u64) -> std::io::Result<()> {
        let mut at = data_start;
        let mut payload = Vec::new();
        loop {
            if at == self.len {
                self.warning = Some(format!(
                    "the trace has no index (the recording did not finish): read {} chunks{}; the run's end is not recorded",
                    self.chunks.len(),
                    self.steps_read()
                ));
                return Ok(());
            }
            let mut hb = [0u8; CHUNK_HEADER_LEN as usize];
            let ok = at + CHUNK_HEADER_LEN <= self.len
                && read_exact_at(&mut self.file, at, &mut hb).is_ok();
            let h = if ok {
                ChunkHeader::from_bytes(&hb)
            } else {
                None
            };
            let good = h.filter(|h| {
                h.raw_len <= MAX_CHUNK_RAW
                    && at + CHUNK_HEADER_LEN + h.payload_len as u64 <= self.len
            });
            let verified = good.is_some_and(|h| {
                payload.resize(h.payload_len as usize, 0);
                self.file.read_exact(&mut payload).is_ok() && crc32fast::hash(&payload) == h.crc32
            });
            match (good, verified) {
                (Some(h), true) => {
                    self.chunks.push(ChunkInfo {
                        offset: at,
                        first_step: h.first_step,
                        last_step: h.last_step,
                        events: h.events,
                    });
                    at += CHUNK_HEADER_LEN + h.payload_len as u64;
                }
                _ => {
                    let tail = if hb[..4] == INDEX_MAGIC {
                        "its index is damaged"
                    } else {
                        "the rest is lost"
                    };
                    self.warning = Some(format!(
                        "the trace is truncated or damaged at byte {at}: read {} chunks{}; {tail}",
                        self.chunks.len(),
                        self.steps_read()
                    ));
                    return Ok(());
                }
            }
        }
    }

    fn steps_read(&self) -> String {
        match self.chunks.last() {
            Some(c) => format!(" (events up to step {})", c.last_step),
            None => String::new(),
        }
    }

    /// The format version the trace was written in.
    pub fn format_version(&self) -> u32 {
        self.version
    }

    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The chunks, with the steps each covers.
    pub fn index(&self) -> &[ChunkInfo] {
        &self.chunks
    }

    /// Whether the trace is complete (it has its index and footer).
    pub fn is_complete(&self) -> bool {
        self.indexed
    }

    /// What is wrong with a trace that was read only in part.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Every event, in order, streaming chunk by chunk.
    pub fn into_events(self) -> Events {
        self.events_from_chunk(0)
    }

    /// Events from the start of the chunk holding `step` on: every event with a step of at
    /// least `step` is among them, preceded by at most one chunk's worth of earlier events
    /// (callers filter). `Run` events carry no step and are yielded where they stand.
    pub fn events_from(self, step: u64) -> Events {
        let i = self
            .chunks
            .iter()
            .position(|c| c.last_step >= step)
            .unwrap_or(self.chunks.len());
        self.events_from_chunk(i)
    }

    fn events_from_chunk(self, chunk: usize) -> Events {
        Events {
            reader: self,
            chunk,
            raw: Vec::new(),
            pos: 0,
            left: 0,
            state: CodecState::default(),
            done: false,
        }
    }
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Streaming iterator over a trace's events. After an error it ends.
pub struct Events {
    reader: TraceReader,
    chunk: usize,
    raw: Vec<u8>,
    pos: usize,
    left: u32,
    state: CodecState,
    done: bool,
}

impl Events {
    fn load(&mut self) -> Result<bool, TraceError> {
        let Some(info) = self.reader.chunks.get(self.chunk).copied() else {
            return Ok(false);
        };
        let path = self.reader.path.clone();
        let bad = |what: String| TraceError::Corrupt {
            path: path.clone(),
            what: format!(
                "chunk {} at byte {} is corrupt ({what})",
                self.chunk, info.offset
            ),
        };
        let mut hb = [0u8; CHUNK_HEADER_LEN as usize];
        read_exact_at(&mut self.reader.file, info.offset, &mut hb)
            .map_err(|e| bad(e.to_string()))?;
        let h = ChunkHeader::from_bytes(&hb).ok_or_else(|| bad("bad chunk magic".into()))?;
        if h.raw_len > MAX_CHUNK_RAW
            || info.offset + CHUNK_HEADER_LEN + h.payload_len as u64 > self.reader.len
        {
            return Err(bad("impossible length".into()));
        }
        let mut payload = vec![0u8; h.payload_len as usize];
        self.reader
            .file
            .read_exact(&mut payload)
            .map_err(|e| bad(e.to_string()))?;
        if crc32fast::hash(&payload) != h.crc32 {
            return Err(bad("checksum mismatch".into()));
        }
        self.raw =
            zstd::bulk::decompress(&payload, h.raw_len as usize).map_err(|e| bad(e.to_string()))?;
        if self.raw.len() != h.raw_len as usize {
            return Err(bad("wrong decompressed length".into()));
        }
        self.pos = 0;
        self.left = h.events;
        self.state = CodecState::default();
        self.chunk += 1;
        Ok(true)
    }
}

impl Iterator for Events {
    type Item = Result<Event, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while self.left == 0 {
            match self.load() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let mut buf = &self.raw[self.pos..];
        let before = buf.len();
        match self.state.decode(&mut buf) {
            Ok(e) => {
                self.pos += before - buf.len();
                self.left -= 1;
                Some(Ok(e))
            }
            Err(err) => {
                self.done = true;
                Some(Err(TraceError::Corrupt {
                    path: self.reader.path.clone(),
                    what: format!(
                        "chunk {} does not decode: {err}",
                        self.chunk.saturating_sub(1)
                    ),
                }))
            }
        }
    }
}
