//! Byte vectors (de)serialized as one block of bytes instead of element by element. For
//! bincode the encoding is the same (a length, then the bytes), so the trace format does
//! not change; only the work does: console output and embedded guests are copied, not
//! visited byte by byte.

use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_byte_buf(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // Never trust a length from outside for the allocation.
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element()? {
            v.push(b);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use bincode::Options;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Seq(Vec<u8>);
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Block(#[serde(with = "super")] Vec<u8>);

    #[test]
    fn the_encoding_is_that_of_a_sequence_of_bytes() {
        let o = bincode::DefaultOptions::new();
        for n in [0usize, 1, 250, 251, 70_000] {
            let v: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let a = o.serialize(&Seq(v.clone())).unwrap();
            let b = o.serialize(&Block(v.clone())).unwrap();
            assert_eq!(a, b, "{n}");
            assert_eq!(o.deserialize::<Block>(&a).unwrap(), Block(v));
        }
    }
}
