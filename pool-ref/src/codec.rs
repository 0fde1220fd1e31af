//! Values as MessagePack: encoding into any [`Sink`] (a buffer, a count, or straight through
//! to a descriptor), decoding, and value lists, the payload of a task frame and the body of
//! an `O` record (`wire.rs`).
//!
//! A value list is `count:u32`, then the values' encodings back to back (MessagePack is
//! self-delimiting): [`encode_values`], [`values`].
//!
//! Large byte strings are copied as little as possible: a task's arguments holding one are
//! written by the submitting thread straight into their memory file ([`encode_values`]), and
//! a worker writes a large value straight into its report pipe; the [`Sink`] an encoding
//! goes to decides.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::memfile::{end_file, write_fd};

/// Why a value was not encoded. Each shows as its cause alone: the message is the
/// serializer's, which a task's `MaybeEncodingError` and [`PoolError::Serialization`]
/// quote.
///
/// [`PoolError::Serialization`]: crate::PoolError::Serialization
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    /// The value does not serialize (or a [`Sink::Buffer`] refused a large write: then
    /// [`Sink::refused`] says so, and the value is encoded another way).
    #[error("{0}")]
    Value(#[source] rmp_serde::encode::Error),
    /// Writing the encoding to its file failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// Cutting a memory file to the encoding's length failed.
    #[error("{0}")]
    File(#[source] Errno),
}

/// Why a value (or a value list) did not decode.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Fewer bytes than a value list's count takes: not a value list.
    #[error("a value list of {0} bytes is too short for its count")]
    Short(usize),
    /// The bytes are not MessagePack of the expected type: the deserializer's message.
    #[error("{0}")]
    Value(#[source] rmp_serde::decode::Error),
}

/// A value that can be encoded (as MessagePack) into any [`Sink`], as often as needed: what
/// a registered task hands the worker, type erased.
pub(crate) trait Encode {
    fn encode(&self, sink: &mut Sink<'_>) -> Result<(), EncodeError>;
}

impl<T: Serialize + ?Sized> Encode for T {
    /// Structs are maps with field names (as in JSON, so skipped and defaulted fields work);
    /// byte strings (`serde_bytes`) are raw bytes.
    fn encode(&self, sink: &mut Sink<'_>) -> Result<(), EncodeError> {
        let mut serializer = rmp_serde::Serializer::new(sink).with_struct_map();
        self.serialize(&mut serializer).map_err(EncodeError::Value)
    }
}

/// Encodes `value`, appended to `out`. On error, `out` may hold part of the value: the
/// caller truncates it.
pub(crate) fn encode<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), EncodeError> {
    value.encode(&mut Sink::buffer(out, usize::MAX))
}

/// A decoder of values, reading a slice from its start.
pub(crate) type Decoder<'a> = rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'a, [u8]>>;

/// The next value `decoder` holds.
pub(crate) fn decode_next<T: DeserializeOwned>(
    decoder: &mut Decoder<'_>,
) -> Result<T, DecodeError> {
    T::deserialize(decoder).map_err(DecodeError::Value)
}

/// Decodes a value [`encode`] wrote.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_next(&mut Decoder::from_read_ref(bytes))
}

/// A single write at least this large (a byte string's or a string's bytes) is what makes a
/// value large enough to take the way that copies less. The largest payload a task frame
/// carries in its message (`wire::INLINE_PAYLOAD`, which checks that the two agree): a value
/// list with a write this large would be attached anyway, so it goes to a file at once.
pub(crate) const BIG_WRITE: usize = 64 * 1024;

/// Where an encoding goes.
#[derive(Debug)]
pub(crate) enum Sink<'a> {
    /// Appended to a buffer; but a single write of more than `big` bytes is refused
    /// (`refused` is set, nothing is copied): the caller then encodes the value another way.
    Buffer {
        out: &'a mut Vec<u8>,
        big: usize,
        refused: bool,
    },
    /// Only counted.
    Count(u64),
    /// Written through to a descriptor (a pipe or a memory file), `limit` bytes at most:
    /// small writes gathered in `buf`, large ones written from the caller's own memory.
    Through {
        fd: BorrowedFd<'a>,
        buf: Vec<u8>,
        written: u64,
        limit: u64,
    },
}

impl<'a> Sink<'a> {
    pub(crate) fn buffer(out: &'a mut Vec<u8>, big: usize) -> Sink<'a> {
        Sink::Buffer {
            out,
            big,
            refused: false,
        }
    }

    pub(crate) fn through(fd: BorrowedFd<'a>, limit: u64) -> Sink<'a> {
        Sink::Through {
            fd,
            buf: Vec::with_capacity(GATHER),
            written: 0,
            limit,
        }
    }

    /// A write was refused as too large (see [`Sink::Buffer`]).
    pub(crate) fn refused(&self) -> bool {
        matches!(self, Sink::Buffer { refused: true, .. })
    }

    /// Bytes counted, or accepted for writing through.
    pub(crate) fn count(&self) -> u64 {
        match self {
            Sink::Buffer { out, .. } => out.len() as u64,
            Sink::Count(n) | Sink::Through { written: n, .. } => *n,
        }
    }
}

/// Bytes a [`Sink::Through`] gathers before it writes them.
const GATHER: usize = 64 * 1024;

impl Write for Sink<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Buffer { out, big, refused } => {
                if data.len() > *big {
                    *refused = true;
                    return Err(std::io::Error::other("large: encoded another way"));
                }
                out.extend_from_slice(data);
            }
            Sink::Count(n) => *n += data.len() as u64,
            Sink::Through {
                fd,
                buf,
                written,
                limit,
            } => {
                if *written + data.len() as u64 > *limit {
                    return Err(std::io::Error::other("the value grew while it was written"));
                }
                *written += data.len() as u64;
                if buf.len() + data.len() <= GATHER {
                    buf.extend_from_slice(data);
                } else {
                    write_fd(*fd, buf)?;
                    buf.clear();
                    if data.len() < GATHER {
                        buf.extend_from_slice(data);
                    } else {
                        write_fd(*fd, data)?;
                    }
                }
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Sink::Through { fd, buf, .. } = self {
            write_fd(*fd, buf)?;
            buf.clear();
        }
        Ok(())
    }
}

/// Where [`encode_values`] put a value list.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Appended to the buffer.
    Buffer,
    /// In a memory file, of its own.
    File(OwnedFd),
}

/// Encodes `items` as a value list, appended to `out`: in the buffer, unless an item holds
/// a byte string (or string) larger than [`BIG_WRITE`]; then the list is written straight
/// into the memory file `file` gives (`memfile::memory_file`), without a copy in between. (When it
/// gives none, it goes to the buffer all the same.) On error, `out` may hold part of the
/// list.
pub(crate) fn encode_values<T: Serialize>(
    out: &mut Vec<u8>,
    items: &[T],
    file: impl FnOnce() -> Option<OwnedFd>,
) -> Result<Payload, EncodeError> {
    let at = out.len();
    let count = (items.len() as u32).to_le_bytes();
    out.extend_from_slice(&count);
    let mut large = false;
    for item in items {
        let mut sink = Sink::buffer(out, BIG_WRITE);
        if let Err(e) = item.encode(&mut sink) {
            if !sink.refused() {
                return Err(e);
            }
            large = true;
            break;
        }
    }
    if !large {
        return Ok(Payload::Buffer);
    }
    out.truncate(at);
    let Some(file) = file() else {
        out.extend_from_slice(&count);
        for item in items {
            encode(out, item)?;
        }
        return Ok(Payload::Buffer);
    };
    let mut sink = Sink::through(file.as_fd(), u64::MAX);
    sink.write_all(&count).map_err(EncodeError::Io)?;
    for item in items {
        item.encode(&mut sink)?;
    }
    sink.flush().map_err(EncodeError::Io)?;
    end_file(&file, sink.count()).map_err(EncodeError::File)?;
    Ok(Payload::File(file))
}

/// The values of a value list, decoded one at a time.
pub(crate) struct Values<'a> {
    /// How many there are.
    pub count: u32,
    pub decoder: Decoder<'a>,
}

impl std::fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Values")
            .field("count", &self.count)
            .finish()
    }
}

/// The values of the value list `bytes`, or [`DecodeError::Short`] if it is too short to be
/// one.
pub(crate) fn values(bytes: &[u8]) -> Result<Values<'_>, DecodeError> {
    let Some(&[a, b, c, d]) = bytes.get(..4) else {
        return Err(DecodeError::Short(bytes.len()));
    };
    let count = u32::from_le_bytes([a, b, c, d]);
    Ok(Values {
        count,
        decoder: Decoder::from_read_ref(&bytes[4..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfile::tests::content;
    use crate::memfile::{memory_file, payload_file};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use serde_bytes::ByteBuf;
    use std::os::unix::fs::FileExt;

    fn decode_all<T: DeserializeOwned>(list: &[u8]) -> Vec<T> {
        let mut values = values(list).expect("a value list");
        (0..values.count)
            .map(|_| decode_next(&mut values.decoder).expect("a value"))
            .collect()
    }

    #[test]
    fn values_encode_as_messagepack() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct S {
            a: u32,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            b: Option<String>,
            bytes: ByteBuf,
        }
        let s = S {
            a: 1,
            b: None,
            bytes: ByteBuf::from(vec![0u8; 1000]),
        };
        let mut out = Vec::new();
        encode(&mut out, &s).unwrap();
        // Field names, and the bytes as one MessagePack bin: no byte spends more than one.
        assert!(out.len() < 1000 + 20, "{} bytes", out.len());
        assert_eq!(decode::<S>(&out).unwrap(), s);
        let v = serde_json::json!({"k": [1, -2, 3.5, "x", null, true]});
        let mut out = Vec::new();
        encode(&mut out, &v).unwrap();
        assert_eq!(decode::<serde_json::Value>(&out).unwrap(), v);
    }

    /// Small values go to the buffer; a byte string of more than [`BIG_WRITE`] bytes sends
    /// the whole list to a memory file, written there without a copy in between.
    #[test]
    fn value_lists_of_large_byte_strings_go_to_a_file() {
        for n in [0, 1, BIG_WRITE - 1, BIG_WRITE] {
            let items = [ByteBuf::from(vec![7; n]), ByteBuf::from(vec![8; 3])];
            let mut out = vec![9];
            let payload = encode_values(&mut out, &items, || None).unwrap();
            assert!(matches!(payload, Payload::Buffer), "{n} bytes");
            assert_eq!(decode_all::<ByteBuf>(&out[1..]), items);
        }
        for n in [BIG_WRITE + 1, 16 << 20] {
            let items = [ByteBuf::from(vec![8; 3]), ByteBuf::from(vec![7; n])];
            let mut out = vec![9];
            let Payload::File(file) =
                encode_values(&mut out, &items, || memory_file(None).ok()).unwrap()
            else {
                panic!("{n} bytes in the buffer");
            };
            assert_eq!(out, [9], "nothing left in the buffer");
            assert_eq!(decode_all::<ByteBuf>(&content(&file)), items);
        }
        // Many small values make no file, however many.
        let items: Vec<u64> = (0..100_000).collect();
        let mut out = Vec::new();
        assert!(matches!(
            encode_values(&mut out, &items, || None).unwrap(),
            Payload::Buffer
        ));
        assert_eq!(decode_all::<u64>(&out), items);
        // A value that does not serialize is an error, in either place.
        struct Refuse;
        impl Serialize for Refuse {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let refused = encode_values(&mut Vec::new(), &[Refuse], || None);
        assert!(
            matches!(&refused, Err(EncodeError::Value(_))),
            "{refused:?}"
        );
        assert_eq!(refused.unwrap_err().to_string(), "no");
        // Too short for a count is no value list; bytes that are not the type, bad values.
        assert!(matches!(values(&[1, 0]), Err(DecodeError::Short(2))));
        assert!(matches!(
            decode::<String>(&[0x01]),
            Err(DecodeError::Value(_))
        ));
    }

    /// A memory file written again holds the new payload alone, whatever it held before and
    /// wherever its offset was left.
    #[test]
    fn memory_files_are_rewritten_from_the_start() {
        let file = payload_file(&[1; 5000], None).unwrap();
        std::fs::File::from(file.try_clone().unwrap())
            .read_exact_at(&mut [0; 10], 0)
            .unwrap();
        let file = payload_file(&[2; 300], Some(file)).unwrap();
        assert_eq!(content(&file), vec![2; 300]);
        let items = [ByteBuf::from(vec![3; BIG_WRITE + 1])];
        let mut spare = Some(payload_file(&vec![4; 3 * BIG_WRITE], None).unwrap());
        let file = || memory_file(spare.take()).ok();
        let Payload::File(file) = encode_values(&mut Vec::new(), &items, file).unwrap() else {
            panic!("not in a file");
        };
        assert!(spare.is_none(), "the spare file was used");
        assert_eq!(decode_all::<ByteBuf>(&content(&file)), items);
        let file = payload_file(&[5; 7], Some(file)).unwrap();
        assert_eq!(content(&file), vec![5; 7]);
    }

    /// A sink writing through to a descriptor gathers small writes, passes large ones on
    /// as they are, and refuses to go beyond its limit.
    #[test]
    fn sinks_count_and_write_through() {
        let value = (
            ByteBuf::from(vec![5u8; 3 * GATHER]),
            vec![1u32; 5000],
            "end".to_owned(),
        );
        let mut counted = Sink::Count(0);
        value.encode(&mut counted).unwrap();
        let n = counted.count();
        let file = memfd_create("test", MFdFlags::MFD_CLOEXEC).unwrap();
        let mut sink = Sink::through(file.as_fd(), n);
        value.encode(&mut sink).unwrap();
        sink.flush().unwrap();
        assert_eq!(sink.count(), n);
        let written = content(&file);
        assert_eq!(written.len() as u64, n);
        assert_eq!(
            decode::<(ByteBuf, Vec<u32>, String)>(&written).unwrap(),
            value
        );
        let mut short = Sink::through(file.as_fd(), n - 1);
        assert!(value.encode(&mut short).is_err());
        // A buffer refuses a large write without copying any of it.
        let mut out = Vec::new();
        let mut sink = Sink::buffer(&mut out, GATHER);
        assert!(value.encode(&mut sink).is_err());
        assert!(sink.refused());
        assert!(out.len() < 16, "{} bytes copied", out.len());
    }
}
