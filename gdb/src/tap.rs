//! The connection to gdb, reading along. gdb reverse-steps with `Hc0` ("any thread") and
//! `bs`, meaning the thread it last selected; gdbstub passes the first thread instead. The
//! tap notes which thread gdb selected (`Hg`) and whether the resume thread is "any" (`Hc`),
//! so the target can step the thread gdb means.

use std::cell::RefCell;
use std::net::TcpStream;
use std::rc::Rc;

use gdbstub::conn::{Connection, ConnectionExt};

/// What the tap has seen gdb say.
#[derive(Debug, Default)]
pub struct Seen {
    /// The thread gdb selected last (`Hg`), as a gdb thread id; the target also sets it at
    /// each stop, whose reply selects the stopped thread for gdb.
    pub general: Option<usize>,
    /// Whether the latest `Hc` named no thread in particular (0 or -1).
    pub resume_any: bool,
}

/// A TCP connection to gdb that reads packets as they go by.
pub struct Tap {
    stream: TcpStream,
    reader: PacketReader,
}

/// Follows the packets in the bytes gdb sends.
#[derive(Default)]
struct PacketReader {
    /// The start of the packet being read (after `$`), if inside one.
    packet: Option<Vec<u8>>,
    seen: Rc<RefCell<Seen>>,
}

/// The thread of a thread id as gdb writes it: `p1.2`, `2`, `-1`, `0` (hex). `None`: any
/// or all threads.
fn thread_of(id: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(id).ok()?;
    let tid = match s.strip_prefix('p') {
        Some(rest) => rest.split_once('.').map_or("-1", |(_, t)| t),
        None => s,
    };
    match usize::from_str_radix(tid, 16) {
        Ok(0) | Err(_) => None,
        Ok(t) => Some(t),
    }
}

impl Tap {
    pub fn new(stream: TcpStream) -> Tap {
        Tap {
            stream,
            reader: PacketReader::default(),
        }
    }

    /// What gdb has said, shared with the target.
    pub fn seen(&self) -> Rc<RefCell<Seen>> {
        self.reader.seen.clone()
    }
}

impl PacketReader {
    fn note(&mut self, byte: u8) {
        match (byte, &mut self.packet) {
            (b'$', _) => self.packet = Some(Vec::new()),
            (b'#', Some(body)) => {
                let body = std::mem::take(body);
                self.packet = None;
                let mut seen = self.seen.borrow_mut();
                if let Some(id) = body.strip_prefix(b"Hg") {
                    if let Some(t) = thread_of(id) {
                        seen.general = Some(t);
                    }
                } else if let Some(id) = body.strip_prefix(b"Hc") {
                    seen.resume_any = thread_of(id).is_none();
                }
            }
            // Only the first bytes of a packet matter; keep no more of a long one.
            (_, Some(body)) if body.len() < 64 => body.push(byte),
            _ => {}
        }
    }
}

impl Connection for Tap {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        Connection::write(&mut self.stream, byte)
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        Connection::write_all(&mut self.stream, buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Connection::flush(&mut self.stream)
    }

    fn on_session_start(&mut self) -> Result<(), Self::Error> {
        self.stream.on_session_start()
    }
}

impl ConnectionExt for Tap {
    fn read(&mut self) -> Result<u8, Self::Error> {
        let b = ConnectionExt::read(&mut self.stream)?;
        self.reader.note(b);
        Ok(b)
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        ConnectionExt::peek(&mut self.stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_ids_as_gdb_writes_them() {
        assert_eq!(thread_of(b"p1.2"), Some(2));
        assert_eq!(thread_of(b"p1.a"), Some(10));
        assert_eq!(thread_of(b"3"), Some(3));
        assert_eq!(thread_of(b"p1.0"), None);
        assert_eq!(thread_of(b"p1.-1"), None);
        assert_eq!(thread_of(b"-1"), None);
        assert_eq!(thread_of(b"0"), None);
        assert_eq!(thread_of(b"p1"), None);
    }

    #[test]
    fn selections_are_read_from_whole_packets() {
        let mut r = PacketReader::default();
        let feed = |r: &mut PacketReader, text: &str| text.bytes().for_each(|b| r.note(b));
        feed(&mut r, "+$Hgp1.2#00+$Hcp1.0#00");
        assert_eq!(r.seen.borrow().general, Some(2));
        assert!(r.seen.borrow().resume_any);
        feed(&mut r, "$Hcp1.1#00$Hgp1.0#00$m401000,4#00");
        assert_eq!(r.seen.borrow().general, Some(2), "Hg0 selects no thread");
        assert!(!r.seen.borrow().resume_any);
        // Packet bodies are not mistaken for packets.
        feed(&mut r, "$X1000,2:Hg5#00");
        assert_eq!(r.seen.borrow().general, Some(2));
    }
}
