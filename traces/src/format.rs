//! Byte layout constants of a .weft file (see docs/trace-format.md).

/// First 8 bytes of every trace.
pub const MAGIC: [u8; 8] = *b"WEFTTRC\0";
/// Version of the layout and encoding; any change bumps it.
pub const FORMAT_VERSION: u32 = 5;
/// The oldest version this weft still reads: 3 is 4 without `Backtrace` events; 4 is 5
/// without `MachineOptions::sharing` (every access shared) and `Share` events.
pub const OLDEST_READABLE_VERSION: u32 = 3;
/// Marks the start of every chunk.
pub const CHUNK_MAGIC: [u8; 4] = *b"CHNK";
/// Marks the start of the index.
pub const INDEX_MAGIC: [u8; 4] = *b"INDX";
/// Last 8 bytes of a complete trace.
pub const END_MAGIC: [u8; 8] = *b"WEFTEND\0";

/// magic, version, header length.
pub const FILE_HEADER_LEN: u64 = 16;
/// magic, payload length, crc32, raw length, event count, first step, last step.
pub const CHUNK_HEADER_LEN: u64 = 4 + 4 + 4 + 4 + 4 + 8 + 8;
/// index offset, end magic.
pub const FOOTER_LEN: u64 = 16;
/// offset, first step, last step, events.
pub const INDEX_ENTRY_LEN: u64 = 8 + 8 + 8 + 4;

/// Largest uncompressed chunk a reader accepts. Writers close a chunk at about 1 MiB; one
/// is larger only when a single event is, at most a `FileData` of a 64 MiB file.
pub const MAX_CHUNK_RAW: u32 = 128 << 20;
/// Largest header a reader accepts (it embeds the guest ELF).
pub const MAX_HEADER: u32 = 1 << 30;

/// Where a chunk is and which steps it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// File offset of the chunk's magic.
    pub offset: u64,
    /// Steps of the first and last event that has a step (Run events have none).
    pub first_step: u64,
    pub last_step: u64,
    pub events: u32,
}

/// The fixed-size header in front of each chunk's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    pub payload_len: u32,
    pub crc32: u32,
    pub raw_len: u32,
    pub events: u32,
    pub first_step: u64,
    pub last_step: u64,
}

impl ChunkHeader {
    pub fn to_bytes(self) -> [u8; CHUNK_HEADER_LEN as usize] {
        let mut b = [0u8; CHUNK_HEADER_LEN as usize];
        b[0..4].copy_from_slice(&CHUNK_MAGIC);
        b[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        b[8..12].copy_from_slice(&self.crc32.to_le_bytes());
        b[12..16].copy_from_slice(&self.raw_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.events.to_le_bytes());
        b[20..28].copy_from_slice(&self.first_step.to_le_bytes());
        b[28..36].copy_from_slice(&self.last_step.to_le_bytes());
        b
    }

    /// Parse; `None` if the magic is wrong.
    pub fn from_bytes(b: &[u8; CHUNK_HEADER_LEN as usize]) -> Option<ChunkHeader> {
        if b[0..4] != CHUNK_MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        Some(ChunkHeader {
            payload_len: u32_at(4),
            crc32: u32_at(8),
            raw_len: u32_at(12),
            events: u32_at(16),
            first_step: u64_at(20),
            last_step: u64_at(28),
        })
    }
}
