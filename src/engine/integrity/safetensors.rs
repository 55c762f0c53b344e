//! A strict parser for the safetensors header (the format of huggingface/safetensors `tensor.rs`). Only the header
//! is read, never the tensor data:
//! - 8 bytes little-endian `N`, the header length; `N` ≤ 100,000,000 and `8 + N` ≤ the file length;
//! - `N` bytes of UTF-8 JSON: an object starting with `{`, possibly padded with trailing spaces;
//! - `__metadata__` (optional) maps strings to strings; every other key is a tensor with `dtype`, `shape` and
//!   `data_offsets [begin, end)` relative to the data start;
//! - sorted by offset, tensors cover the data contiguously from 0 with no gap or overlap, each
//!   `end - begin == product(shape) × dtype size` (checked arithmetic), and the file ends exactly at the last end.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::de::{Deserializer, MapAccess, Visitor};

/// The format's limit on the header length.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetensorsError {
    #[error("file is {len} bytes, shorter than the 8-byte header length prefix")]
    TooShort { len: u64 },
    #[error("header length {n} exceeds the format's limit of {MAX_HEADER_BYTES} bytes")]
    HeaderTooLarge { n: u64 },
    #[error("header length {n} runs past the end of the {file_len}-byte file (truncated?)")]
    HeaderPastEnd { n: u64, file_len: u64 },
    #[error("header is not valid UTF-8")]
    NotUtf8,
    #[error("header does not start with `{{`")]
    NotAnObject,
    #[error("header is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("header has the key {0:?} twice")]
    DuplicateKey(String),
    #[error("`__metadata__` must map strings to strings: {0}")]
    BadMetadata(String),
    #[error("tensor {name:?}: {why}")]
    BadTensor { name: String, why: String },
    #[error("tensor {name:?}: unknown dtype {dtype:?}")]
    UnknownDtype { name: String, dtype: String },
    #[error("tensor {name:?}: size of shape {shape:?} overflows")]
    SizeOverflow { name: String, shape: Vec<u64> },
    #[error(
        "tensor {name:?}: data_offsets span {actual} bytes but shape {shape:?} × {dtype} needs {expected} bytes"
    )]
    WrongTensorSize {
        name: String,
        dtype: String,
        shape: Vec<u64>,
        expected: u64,
        actual: u64,
    },
    #[error("tensor {name:?} starts at {begin} but the previous tensor ends at {expected} (gap)")]
    Gap {
        name: String,
        expected: u64,
        begin: u64,
    },
    #[error(
        "tensor {name:?} starts at {begin}, inside the previous tensor which ends at {expected} (overlap)"
    )]
    Overlap {
        name: String,
        expected: u64,
        begin: u64,
    },
    #[error(
        "tensors cover {covered} data bytes but the file holds {data_len} after the header ({})",
        if data_len > covered { "trailing bytes" } else { "truncated" }
    )]
    DataLengthMismatch { covered: u64, data_len: u64 },
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub begin: u64,
    pub end: u64,
}

/// A parsed, consistent header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `N`, the JSON header's length in bytes.
    pub header_len: u64,
    pub metadata: BTreeMap<String, String>,
    /// Sorted by offset.
    pub tensors: Vec<TensorInfo>,
}

impl Header {
    /// Total parameters (elements) across tensors.
    pub fn parameters(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.shape.iter().product::<u64>())
            .sum()
    }
}

/// Size of one element in bits (sub-byte float formats exist).
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// Header entries in file order, so duplicate keys are caught (a plain map would silently keep the last one).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, serde_json::Value>()? {
                    v.push((k, val));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parse and check a header. `prefix` holds at least the first `8 + N` bytes of the file (more is ignored);
/// `file_len` is the whole file's length.
pub fn parse_header(prefix: &[u8], file_len: u64) -> Result<Header, SafetensorsError> {
    if file_len < 8 || prefix.len() < 8 {
        return Err(SafetensorsError::TooShort { len: file_len });
    }
    let n = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER_BYTES {
        return Err(SafetensorsError::HeaderTooLarge { n });
    }
    let header_end = 8 + n;
    if header_end > file_len || (prefix.len() as u64) < header_end {
        return Err(SafetensorsError::HeaderPastEnd { n, file_len });
    }
    let text = std::str::from_utf8(&prefix[8..header_end as usize])
        .map_err(|_| SafetensorsError::NotUtf8)?;
    if !text.starts_with('{') {
        return Err(SafetensorsError::NotAnObject);
    }
    let entries: Entries =
        serde_json::from_str(text).map_err(|e| SafetensorsError::InvalidJson(e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::new();
    for (key, value) in entries.0 {
        if !seen.insert(key.clone()) {
            return Err(SafetensorsError::DuplicateKey(key));
        }
        if key == "__metadata__" {
            let obj = value
                .as_object()
                .ok_or_else(|| SafetensorsError::BadMetadata("not an object".into()))?;
            for (k, v) in obj {
                let s = v.as_str().ok_or_else(|| {
                    SafetensorsError::BadMetadata(format!("value of {k:?} is not a string"))
                })?;
                metadata.insert(k.clone(), s.to_string());
            }
            continue;
        }
        tensors.push(tensor_info(key, &value)?);
    }
    tensors.sort_by_key(|t| (t.begin, t.end));
    let mut expected = 0u64;
    for t in &tensors {
        if t.begin > expected {
            return Err(SafetensorsError::Gap {
                name: t.name.clone(),
                expected,
                begin: t.begin,
            });
        }
        if t.begin < expected {
            return Err(SafetensorsError::Overlap {
                name: t.name.clone(),
                expected,
                begin: t.begin,
            });
        }
        expected = t.end;
    }
    let data_len = file_len - header_end;
    if expected != data_len {
        return Err(SafetensorsError::DataLengthMismatch {
            covered: expected,
            data_len,
        });
    }
    Ok(Header {
        header_len: n,
        metadata,
        tensors,
    })
}

fn tensor_info(name: String, v: &serde_json::Value) -> Result<TensorInfo, SafetensorsError> {
    let bad = |why: &str| SafetensorsError::BadTensor {
        name: name.clone(),
        why: why.to_string(),
    };
    let obj = v.as_object().ok_or_else(|| bad("entry is not an object"))?;
    let dtype = obj
        .get("dtype")
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad("missing or non-string `dtype`"))?
        .to_string();
    let shape_v = obj
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("missing or non-array `shape`"))?;
    let mut shape = Vec::with_capacity(shape_v.len());
    for d in shape_v {
        shape.push(
            d.as_u64()
                .ok_or_else(|| bad("`shape` holds a value that is not a non-negative integer"))?,
        );
    }
    let offs = obj
        .get("data_offsets")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("missing or non-array `data_offsets`"))?;
    if offs.len() != 2 {
        return Err(bad("`data_offsets` must have exactly two entries"));
    }
    let begin = offs[0]
        .as_u64()
        .ok_or_else(|| bad("`data_offsets` begin is not a non-negative integer"))?;
    let end = offs[1]
        .as_u64()
        .ok_or_else(|| bad("`data_offsets` end is not a non-negative integer"))?;
    if end < begin {
        return Err(bad("`data_offsets` end is before begin"));
    }
    let bits = dtype_bits(&dtype).ok_or_else(|| SafetensorsError::UnknownDtype {
        name: name.clone(),
        dtype: dtype.clone(),
    })?;
    let overflow = || SafetensorsError::SizeOverflow {
        name: name.clone(),
        shape: shape.clone(),
    };
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(*d))
        .ok_or_else(overflow)?;
    let total_bits = elements.checked_mul(bits).ok_or_else(overflow)?;
    if total_bits % 8 != 0 {
        return Err(bad("shape × dtype bits is not a whole number of bytes"));
    }
    let expected = total_bits / 8;
    if end - begin != expected {
        return Err(SafetensorsError::WrongTensorSize {
            name,
            dtype,
            shape,
            expected,
            actual: end - begin,
        });
    }
    Ok(TensorInfo {
        name,
        dtype,
        shape,
        begin,
        end,
    })
}

/// Problems checking a file: I/O, or the header itself.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Format(#[from] SafetensorsError),
}

/// Read only the header of a safetensors file and check it against the file's length.
pub fn check_file(path: &Path) -> Result<Header, CheckError> {
    let mut f = std::fs::File::open(path)?;
    let file_len = f.metadata()?.len();
    let mut len_buf = [0u8; 8];
    if file_len < 8 {
        return Err(SafetensorsError::TooShort { len: file_len }.into());
    }
    f.read_exact(&mut len_buf)?;
    let n = u64::from_le_bytes(len_buf);
    if n > MAX_HEADER_BYTES {
        return Err(SafetensorsError::HeaderTooLarge { n }.into());
    }
    if 8 + n > file_len {
        return Err(SafetensorsError::HeaderPastEnd { n, file_len }.into());
    }
    let mut buf = vec![0u8; 8 + n as usize];
    buf[..8].copy_from_slice(&len_buf);
    f.read_exact(&mut buf[8..])?;
    Ok(parse_header(&buf, file_len)?)
}

/// Build a valid safetensors file in memory (tests, sample data, benchmarks): tensors of the given dtype and shape
/// in order, each filled with `fill(tensor_index, byte_index)`.
pub fn build_file(
    tensors: &[(&str, &str, &[u64])],
    metadata: &[(&str, &str)],
    fill: impl Fn(usize, usize) -> u8,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        header.insert("__metadata__".into(), m.into());
    }
    let mut offset = 0u64;
    let mut sizes = Vec::new();
    for (name, dtype, shape) in tensors {
        let bits = dtype_bits(dtype).expect("known dtype");
        let size = shape.iter().product::<u64>() * bits / 8;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}),
        );
        offset += size;
        sizes.push(size as usize);
    }
    let mut text = serde_json::to_string(&header).expect("json");
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset as usize);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    for (ti, size) in sizes.iter().enumerate() {
        out.extend((0..*size).map(|b| fill(ti, b)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        build_file(
            &[
                ("a", "F32", &[2, 3]),
                ("b", "BF16", &[4]),
                ("c", "I8", &[0]),
                ("d", "F4", &[6]),
            ],
            &[("format", "pt")],
            |t, b| (t * 7 + b) as u8,
        )
    }

    fn with_header(json: &str, data_len: usize) -> Vec<u8> {
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data_len));
        v
    }

    #[test]
    fn valid_file_parses() {
        let f = sample();
        let h = parse_header(&f, f.len() as u64).unwrap();
        assert_eq!(h.tensors.len(), 4);
        assert_eq!(h.metadata["format"], "pt");
        assert_eq!(h.parameters(), 6 + 4 + 6);
        // Space padding is accepted.
        let f = with_header(
            r#"{"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}    "#,
            3,
        );
        parse_header(&f, f.len() as u64).unwrap();
    }

    #[test]
    fn every_truncation_is_rejected() {
        let f = sample();
        for cut in 0..f.len() {
            assert!(
                parse_header(&f[..cut], cut as u64).is_err(),
                "truncated at {cut} accepted"
            );
        }
    }

    #[test]
    fn every_single_byte_flip_in_the_header_is_rejected_or_consistent() {
        // Fuzz-ish: flipping any bit of the length prefix or header gives an error or, when it happens to stay
        // valid JSON (e.g. inside a name), a header that still passes every rule — never a panic.
        let f = sample();
        let n = u64::from_le_bytes(f[..8].try_into().unwrap()) as usize;
        for i in 0..8 + n {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut g = f.clone();
                g[i] ^= bit;
                if let Ok(h) = parse_header(&g, g.len() as u64) {
                    let end = h.tensors.last().map(|t| t.end).unwrap_or(0);
                    assert_eq!(8 + h.header_len + end, g.len() as u64);
                }
            }
        }
    }

    #[test]
    fn huge_length_is_rejected() {
        let mut f = sample();
        f[..8].copy_from_slice(&(MAX_HEADER_BYTES + 1).to_le_bytes());
        assert!(matches!(
            parse_header(&f, f.len() as u64),
            Err(SafetensorsError::HeaderTooLarge { .. })
        ));
        f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_header(&f, f.len() as u64).is_err());
        let flen = f.len() as u64;
        f[..8].copy_from_slice(&flen.to_le_bytes());
        assert!(matches!(
            parse_header(&f, f.len() as u64),
            Err(SafetensorsError::HeaderPastEnd { .. })
        ));
    }

    #[test]
    fn bad_json_and_shapes() {
        let cases: &[(&str, usize)] = &[
            ("{not json", 0),
            ("[1,2]", 0),
            (
                r#"{"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"x":{"dtype":"U8","shape":[0],"data_offsets":[3,3]}}"#,
                3,
            ),
            (r#"{"__metadata__":{"a":1}}"#, 0),
            (
                r#"{"x":{"dtype":"Q7","shape":[3],"data_offsets":[0,3]}}"#,
                3,
            ),
            (
                r#"{"x":{"dtype":"U8","shape":[-3],"data_offsets":[0,3]}}"#,
                3,
            ),
            (
                r#"{"x":{"dtype":"U8","shape":[3],"data_offsets":[3,0]}}"#,
                3,
            ),
            (r#"{"x":{"dtype":"U8","shape":[3],"data_offsets":[0]}}"#, 3),
            (r#"{"x":{"dtype":"U8","data_offsets":[0,3]}}"#, 3),
            (
                r#"{"x":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
                2,
            ),
            (
                r#"{"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                8,
            ),
        ];
        for (json, data) in cases {
            let f = with_header(json, *data);
            assert!(parse_header(&f, f.len() as u64).is_err(), "{json}");
        }
        let f = with_header("{\"a\":\"\u{ff}\"}", 0);
        let mut g = f.clone();
        g[13] = 0xff;
        assert_eq!(
            parse_header(&g, g.len() as u64),
            Err(SafetensorsError::NotUtf8)
        );
    }

    #[test]
    fn offsets_overlap_gap_wrong_size_trailing() {
        let overlap = with_header(
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
            6,
        );
        assert!(matches!(
            parse_header(&overlap, overlap.len() as u64),
            Err(SafetensorsError::Overlap { .. })
        ));
        let gap = with_header(
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[5,9]}}"#,
            9,
        );
        assert!(matches!(
            parse_header(&gap, gap.len() as u64),
            Err(SafetensorsError::Gap { .. })
        ));
        let wrong = with_header(
            r#"{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,4]}}"#,
            4,
        );
        assert!(matches!(
            parse_header(&wrong, wrong.len() as u64),
            Err(SafetensorsError::WrongTensorSize { expected: 8, .. })
        ));
        let mut trailing = sample();
        trailing.push(0);
        assert!(matches!(
            parse_header(&trailing, trailing.len() as u64),
            Err(SafetensorsError::DataLengthMismatch { .. })
        ));
        let f = sample();
        let short = &f[..f.len() - 1];
        assert!(parse_header(short, short.len() as u64).is_err());
    }

    #[test]
    fn check_file_reads_only_the_header() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.safetensors");
        std::fs::write(&p, sample()).unwrap();
        assert_eq!(check_file(&p).unwrap().tensors.len(), 4);
        let mut f = sample();
        f.truncate(f.len() - 3);
        std::fs::write(&p, f).unwrap();
        let e = check_file(&p).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
