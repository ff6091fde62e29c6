//! The in-chunk encoding of events: compact, delta-coded bytes that zstd then compresses.
//!
//! Shared-memory accesses are nearly all of a trace, so they get a hand-made encoding: a tag
//! byte (kind, size, whether the vCPU is the previous event's), the step as a delta from the
//! previous event, and RIP, address and value as zigzag deltas from the same vCPU's previous
//! access. In a loop these come out as the same few bytes over and over, which is what zstd
//! compresses best. Schedule runs get a short form too; every other event is a tag byte and
//! bincode. The state resets at every chunk, so each chunk decodes on its own.

use crate::event::{AccessKind, Event, GuestAddr, Step, VcpuId, MAX_VCPUS};
use bincode::Options;

const TAG_OTHER: u8 = 0x01;
const TAG_RUN: u8 = 0x02;
/// Access tags: 0x80 | same-vcpu 0x40 | kind << 2 | log2(size).
const TAG_ACCESS: u8 = 0x80;
const SAME_VCPU: u8 = 0x40;

/// Why chunk bytes do not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("event data ends early")]
    Short,
    #[error("unknown event tag {0:#x}")]
    BadTag(u8),
    #[error("vCPU {0} is out of range (at most {MAX_VCPUS})")]
    BadVcpu(u64),
    #[error("malformed event: {0}")]
    Bincode(String),
}

/// Events: none is larger than a chunk may be.
fn bincode_opts() -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_limit(crate::format::MAX_CHUNK_RAW as u64)
}

/// The header, which embeds the guest ELF (an unstripped one can be tens of MiB).
fn header_opts() -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_limit(crate::format::MAX_HEADER as u64)
}

#[derive(Clone, Copy, Default)]
struct Last {
    rip: u64,
    addr: u64,
    value: u64,
}

/// Delta state shared by the encoder and decoder.
#[derive(Clone)]
pub struct CodecState {
    step: u64,
    vcpu: u32,
    last: [Last; MAX_VCPUS as usize],
}

impl Default for CodecState {
    fn default() -> Self {
        CodecState {
            step: 0,
            vcpu: 0,
            last: [Last::default(); MAX_VCPUS as usize],
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Result<u64, CodecError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or(CodecError::Short)?;
        *buf = rest;
        v |= ((b & 0x7F) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(CodecError::Bincode("varint longer than 64 bits".into()))
}

fn zigzag(d: u64) -> u64 {
    ((d as i64) << 1 ^ ((d as i64) >> 63)) as u64
}

fn unzigzag(z: u64) -> u64 {
    ((z >> 1) as i64 ^ -((z & 1) as i64)) as u64
}

fn kind_bits(k: AccessKind) -> u8 {
    match k {
        AccessKind::Read => 0,
        AccessKind::Write => 1,
        AccessKind::AtomicRead => 2,
        AccessKind::AtomicWrite => 3,
    }
}

impl CodecState {
    /// Append `e` to `out`. Fails only for a vCPU id beyond [`MAX_VCPUS`].
    pub fn encode(&mut self, e: &Event, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if let Some(v) = e.vcpu() {
            if v.0 >= MAX_VCPUS {
                return Err(CodecError::BadVcpu(v.0 as u64));
            }
        }
        match e {
            Event::Access {
                step,
                vcpu,
                rip,
                addr,
                size,
                kind,
                value,
            } if matches!(size, 1 | 2 | 4 | 8) => {
                let same = vcpu.0 == self.vcpu;
                let tag = TAG_ACCESS
                    | if same { SAME_VCPU } else { 0 }
                    | kind_bits(*kind) << 2
                    | size.trailing_zeros() as u8;
                out.push(tag);
                put_varint(out, step.0.wrapping_sub(self.step));
                if !same {
                    put_varint(out, vcpu.0 as u64);
                }
                let l = &mut self.last[vcpu.0 as usize];
                put_varint(out, zigzag(rip.wrapping_sub(l.rip)));
                put_varint(out, zigzag(addr.0.wrapping_sub(l.addr)));
                put_varint(out, zigzag(value.wrapping_sub(l.value)));
                *l = Last {
                    rip: *rip,
                    addr: addr.0,
                    value: *value,
                };
                self.step = step.0;
                self.vcpu = vcpu.0;
            }
            Event::Run { vcpu, points } => {
                out.push(TAG_RUN);
                put_varint(out, vcpu.0 as u64);
                put_varint(out, *points);
            }
            other => {
                out.push(TAG_OTHER);
                bincode_opts()
                    .serialize_into(&mut *out, other)
                    .map_err(|e| CodecError::Bincode(e.to_string()))?;
                if let Some(s) = other.step() {
                    self.step = s.0;
                }
            }
        }
        Ok(())
    }

    /// Decode the next event from `buf`, advancing it.
    pub fn decode(&mut self, buf: &mut &[u8]) -> Result<Event, CodecError> {
        let (&tag, rest) = buf.split_first().ok_or(CodecError::Short)?;
        *buf = rest;
        match tag {
            TAG_RUN => {
                let vcpu = get_varint(buf)?;
                if vcpu >= MAX_VCPUS as u64 {
                    return Err(CodecError::BadVcpu(vcpu));
                }
                Ok(Event::Run {
                    vcpu: VcpuId(vcpu as u32),
                    points: get_varint(buf)?,
                })
            }
            TAG_OTHER => {
                let e: Event = bincode_opts()
                    .deserialize_from(&mut *buf)
                    .map_err(|e| CodecError::Bincode(e.to_string()))?;
                if let Some(v) = e.vcpu() {
                    if v.0 >= MAX_VCPUS {
                        return Err(CodecError::BadVcpu(v.0 as u64));
                    }
                }
                if let Some(s) = e.step() {
                    self.step = s.0;
                }
                Ok(e)
            }
            t if t & TAG_ACCESS != 0 && t & 0x20 == 0 => {
                let step = self.step.wrapping_add(get_varint(buf)?);
                let vcpu = if t & SAME_VCPU != 0 {
                    self.vcpu as u64
                } else {
                    get_varint(buf)?
                };
                if vcpu >= MAX_VCPUS as u64 {
                    return Err(CodecError::BadVcpu(vcpu));
                }
                let kind = match (t >> 2) & 3 {
                    0 => AccessKind::Read,
                    1 => AccessKind::Write,
                    2 => AccessKind::AtomicRead,
                    _ => AccessKind::AtomicWrite,
                };
                let size = 1u8 << (t & 3);
                let l = &mut self.last[vcpu as usize];
                let rip = l.rip.wrapping_add(unzigzag(get_varint(buf)?));
                let addr = l.addr.wrapping_add(unzigzag(get_varint(buf)?));
                let value = l.value.wrapping_add(unzigzag(get_varint(buf)?));
                *l = Last { rip, addr, value };
                self.step = step;
                self.vcpu = vcpu as u32;
                Ok(Event::Access {
                    step: Step(step),
                    vcpu: VcpuId(vcpu as u32),
                    rip,
                    addr: GuestAddr(addr),
                    size,
                    kind,
                    value,
                })
            }
            t => Err(CodecError::BadTag(t)),
        }
    }
}

/// Serialize a header: bincode (varint), then one zstd frame (the embedded guest ELF,
/// nearly 1 MB for a static glibc program, is most of a short trace).
pub fn encode_header(h: &crate::TraceHeader, version: u32) -> Result<Vec<u8>, CodecError> {
    let raw = if version < 5 {
        let old = crate::header::LegacyHeader::from_current(h).ok_or_else(|| {
            CodecError::Bincode(format!(
                "format {version} can only say Sharing::All (every access shared)"
            ))
        })?;
        header_opts().serialize(&old)
    } else {
        header_opts().serialize(h)
    }
    .map_err(|e| match *e {
        bincode::ErrorKind::SizeLimit => CodecError::Bincode(format!(
            "the guest ELF ({} MiB) is too large to embed in a trace (at most {} MiB of \
             header); strip its debug information (strip --strip-debug) and record again",
            h.guest.elf.len() >> 20,
            crate::format::MAX_HEADER >> 20
        )),
        e => CodecError::Bincode(e.to_string()),
    })?;
    zstd::bulk::compress(&raw, 3).map_err(|e| CodecError::Bincode(format!("zstd: {e}")))
}

/// Deserialize a header of format `version` (a zstd frame of at most `MAX_HEADER` bytes of
/// bincode); formats before 5 lack `MachineOptions::sharing` and mean `Sharing::All`.
pub fn decode_header(bytes: &[u8], version: u32) -> Result<crate::TraceHeader, CodecError> {
    use std::io::Read;
    let limit = crate::format::MAX_HEADER as u64;
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::new(bytes)
        .and_then(|d| d.take(limit + 1).read_to_end(&mut raw))
        .map_err(|e| CodecError::Bincode(format!("zstd: {e}")))?;
    if raw.len() as u64 > limit {
        return Err(CodecError::Bincode("the header is too large".into()));
    }
    let opts = bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_limit(raw.len() as u64)
        .reject_trailing_bytes();
    let header = if version < 5 {
        opts.deserialize::<crate::header::LegacyHeader>(&raw)
            .map(Into::into)
    } else {
        opts.deserialize(&raw)
    };
    header.map_err(|e| CodecError::Bincode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips() {
        for v in [0u64, 1, 2, u64::MAX, u64::MAX - 1, 1 << 63, 12345] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(u64::MAX), 1); // -1 is small
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 7u64;
        for _ in 0..2000 {
            let len = (seed % 40) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                bytes.push((seed >> 56) as u8);
            }
            let mut st = CodecState::default();
            let mut b: &[u8] = &bytes;
            while !b.is_empty() {
                if st.decode(&mut b).is_err() {
                    break;
                }
            }
        }
    }
}
