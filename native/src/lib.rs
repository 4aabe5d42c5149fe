//! `common._native`: the ingest path's per-record loops, compiled.
//!
//! - `decode_json_batch`: a fluent-bit `Format json` body (a JSON array of records) straight into
//!   the columns the batch is queued in, one tuple per container (common.container_lines).
//! - `content_hashes`: the 47-bit blake2b content hash of each line's stream and text
//!   (common.row_keys).
//! - `partition_blocks` (blocks.rs): a write's lines cut into blocks, per partition (common.blocks).
//! - `decode_loki_json` (loki.rs): a Loki JSON push body into the same columns (common.loki_push).
//!
//! Python keeps the reference implementation of every rule. `decode_json_batch` takes only bodies
//! whose every record is valid and in the shape fluent-bit and container runtimes write (UTC times
//! like 2026-03-14T12:00:00.123456789Z or a numeric `date`, no offsets, no line over the size
//! bound); for anything else it answers None and the Python decoder decides, with its own error
//! messages. Its results are checked against the Python decoder's (tests/unit/test_native.py).

mod blocks;
mod loki;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

const MAX_NAME_CHARACTERS: usize = 253;
const NS_PER_SECOND: i128 = 1_000_000_000;
const MAX_NS: i128 = i64::MAX as i128;
// An integer `date` this large cannot be seconds: fluent-bit's epoch_ms (common.timestamps).
const EPOCH_MS_THRESHOLD: i64 = 100_000_000_000;
const MAX_DATE_SECONDS: f64 = 9_223_372_037.0; // MAX_NS // NS_PER_SECOND + 1
const HASH_MASK: u64 = (1 << 47) - 1;

#[derive(Deserialize)]
struct Record<'a> {
    // Left as JSON text: a pod's records carry the same map byte for byte, decoded once per batch.
    #[serde(borrow)]
    kubernetes: &'a RawValue,
    #[serde(borrow, default)]
    log: Cow<'a, str>,
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    // Read only when `time` is absent (checked for its type otherwise).
    #[serde(borrow, default)]
    date: Option<&'a RawValue>,
    #[serde(default)]
    offset: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Kubernetes<'a> {
    #[serde(borrow)]
    namespace_name: Cow<'a, str>,
    #[serde(borrow)]
    pod_name: Cow<'a, str>,
    #[serde(borrow)]
    container_name: Cow<'a, str>,
    #[serde(borrow, default)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pod_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    docker_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    labels: Option<Labels<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct Text<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

/// A labels object in its order; a key given twice is refused (Python keeps the first place and
/// the last value: left to the Python decoder).
pub(crate) struct Labels<'a>(pub(crate) Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelsVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for LabelsVisitor<'a> {
            type Value = Labels<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut items: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
                while let Some((Text(key), Text(value))) = map.next_entry::<Text<'a>, Text<'a>>()? {
                    if items.iter().any(|(seen, _)| *seen == key) {
                        return Err(de::Error::custom("a label given twice"));
                    }
                    items.push((key, value));
                }
                Ok(Labels(items))
            }
        }
        deserializer.deserialize_map(LabelsVisitor(PhantomData))
    }
}

/// Whether every surrogate escape (\uD800-\uDFFF) in a JSON text is half of a pair. serde_json
/// lets a lone one through in a value it skips; the Python decoder refuses the body for it.
pub(crate) fn surrogates_paired(body: &[u8]) -> bool {
    fn escape_at(body: &[u8], at: usize) -> Option<u32> {
        let hex = body.get(at + 2..at + 6)?;
        (body[at + 1] == b'u').then(|| u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())?
    }
    let mut next = 0; // the first byte not yet inside an escape
    for at in memchr::memchr_iter(b'\\', body) {
        if at < next {
            continue;
        }
        next = at + 2; // an escape is at least a backslash and one character
        match escape_at(body, at) {
            Some(0xD800..=0xDBFF) => match escape_at(body, at + 6) {
                Some(0xDC00..=0xDFFF) if body[at + 6] == b'\\' => next = at + 12,
                _ => return false,
            },
            Some(0xDC00..=0xDFFF) => return false,
            Some(_) => next = at + 6,
            None => {}
        }
    }
    true
}

/// One container's lines: (record, time, metadata index), and its distinct metadata.
struct Container {
    first: usize,      // the decoded kubernetes map that named it first
    metas: Vec<usize>, // the decoded kubernetes map that holds each distinct metadata
    lines: Vec<(usize, i64, usize)>,
}

pub(crate) fn valid_name(name: &str) -> bool {
    // Python's rule is 1 to 253 characters, not str.isspace(); a name with a visible ASCII
    // character is never blank. Other names are left to the Python decoder.
    name.bytes().any(|b| b.is_ascii_graphic()) && name.chars().count() <= MAX_NAME_CHARACTERS
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |value, &b| b.is_ascii_digit().then(|| value * 10 + i64::from(b - b'0')))
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.<1 to 9 digits>]Z` between 1970 and 2261 -> ns (Go's RFC3339Nano, as
/// Docker and CRI write it, drops a zero fraction); any other text None.
fn utc_time_ns(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let n = b.len();
    if !(n == 20 || (22..=30).contains(&n)) || b[n - 1] != b'Z' || (n > 20 && b[19] != b'.') {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    let fraction = if n == 20 { 0 } else { digits(&b[20..n - 1])? };
    if !(1970..=2261).contains(&year) || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month)
        || hour > 23 || minute > 59 || second > 59
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(seconds * 1_000_000_000 + if n == 20 { 0 } else { fraction * 10i64.pow((30 - n) as u32) })
}

fn in_range(ns: i128) -> Option<i64> {
    (0..=MAX_NS).contains(&ns).then_some(ns as i64)
}

/// A `date` Python reads as a float or an int64 (msgspec: float | int | str | None): its literal,
/// whether it has a fraction or an exponent; None for a string, or a number beyond those types.
fn date_number(raw: &RawValue) -> Option<(&str, bool)> {
    let text = raw.get();
    let first = *text.as_bytes().first()?;
    if first != b'-' && !first.is_ascii_digit() {
        return None;
    }
    let is_float = text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    let plain = text.len() <= 18 && text.bytes().all(|b| b == b'-' || b == b'.' || b.is_ascii_digit());
    if !plain {
        if is_float {
            text.parse::<f64>().ok().filter(|v| v.is_finite() && v.abs() < 9.2e18)?;
        } else {
            text.parse::<i64>().ok()?;
        }
    }
    Some((text, is_float))
}

/// Whether the Python decoder would accept this `date` beside a `time` (it is then not read).
fn date_type_ok(raw: &RawValue) -> bool {
    raw.get().starts_with('"') || date_number(raw).is_some()
}

/// common.timestamps.date_value_to_ns for numbers; None where Python raises or reads a string.
fn date_ns(raw: &RawValue) -> Option<i64> {
    let (text, is_float) = date_number(raw)?;
    if is_float {
        let seconds: f64 = text.parse().ok()?;
        if seconds.abs() > MAX_DATE_SECONDS {
            return None;
        }
        return in_range(((seconds * 1_000_000.0).round_ties_even() as i128) * 1000);
    }
    let value: i64 = text.parse().ok()?;
    if value.abs() >= EPOCH_MS_THRESHOLD {
        return in_range(i128::from(value) * 1_000_000);
    }
    if (value as f64).abs() > MAX_DATE_SECONDS {
        return None;
    }
    in_range(i128::from(value) * NS_PER_SECOND)
}

/// Python's equality of two label dicts (None, or the same items in any order): the one rule by
/// which every fast path here tells metadata values apart.
pub(crate) fn same_items<T: PartialEq>(a: Option<&[T]>, b: Option<&[T]>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.len() == b.len() && a.iter().all(|item| b.contains(item)),
        _ => false,
    }
}

fn same_labels(a: &Option<Labels>, b: &Option<Labels>) -> bool {
    same_items(a.as_ref().map(|Labels(items)| items.as_slice()), b.as_ref().map(|Labels(items)| items.as_slice()))
}

fn same_meta(a: &Kubernetes, b: &Kubernetes) -> bool {
    a.host == b.host && a.pod_id == b.pod_id && a.docker_id == b.docker_id && same_labels(&a.labels, &b.labels)
}

/// The records grouped by container, with each distinct kubernetes map decoded once; None when
/// some record is not for this fast path.
fn group<'a>(records: &[Record<'a>], max_line_bytes: usize) -> Option<(Vec<Kubernetes<'a>>, Vec<Container>)> {
    let mut maps: Vec<Kubernetes<'a>> = Vec::new();
    let mut containers: Vec<Container> = Vec::new();
    let mut place_of: HashMap<&'a str, (usize, usize)> = HashMap::new(); // map text -> (container, meta)
    let mut container_of: HashMap<(String, String, String), usize> = HashMap::new();
    for (index, record) in records.iter().enumerate() {
        if record.offset.is_some() || record.log.len() > max_line_bytes {
            return None;
        }
        let ts = match (&record.time, record.date) {
            (Some(time), date) if date.is_none_or(date_type_ok) => utc_time_ns(time)?,
            (None, Some(date)) => date_ns(date)?,
            _ => return None,
        };
        let raw: &'a str = record.kubernetes.get();
        let (at, meta) = match place_of.get(raw) {
            Some(&place) => place,
            None => {
                let k8s: Kubernetes<'a> = serde_json::from_str(raw).ok()?;
                if !(valid_name(&k8s.namespace_name) && valid_name(&k8s.pod_name) && valid_name(&k8s.container_name)) {
                    return None;
                }
                let names = (k8s.namespace_name.to_string(), k8s.pod_name.to_string(), k8s.container_name.to_string());
                let at = *container_of.entry(names).or_insert_with(|| {
                    containers.push(Container { first: maps.len(), metas: Vec::new(), lines: Vec::new() });
                    containers.len() - 1
                });
                let container = &mut containers[at];
                let meta = match container.metas.iter().position(|&m| same_meta(&maps[m], &k8s)) {
                    Some(meta) => meta,
                    None => {
                        container.metas.push(maps.len());
                        container.metas.len() - 1
                    }
                };
                maps.push(k8s);
                place_of.insert(raw, (at, meta));
                (at, meta)
            }
        };
        containers[at].lines.push((index, ts, meta));
    }
    Some((maps, containers))
}

fn optional_text<'py>(py: Python<'py>, text: &Option<Cow<str>>) -> Bound<'py, PyAny> {
    match text {
        Some(text) => PyString::new(py, text).into_any(),
        None => py.None().into_bound(py),
    }
}

fn meta_tuple<'py>(py: Python<'py>, k8s: &Kubernetes) -> PyResult<Bound<'py, PyAny>> {
    let labels = match &k8s.labels {
        Some(Labels(items)) => {
            let dict = PyDict::new(py);
            for (key, value) in items {
                dict.set_item(&**key, &**value)?;
            }
            dict.into_any()
        }
        None => py.None().into_bound(py),
    };
    let items = [optional_text(py, &k8s.host), optional_text(py, &k8s.pod_id), optional_text(py, &k8s.docker_id), labels];
    Ok(PyTuple::new(py, items)?.into_any())
}

fn container_tuple<'py>(py: Python<'py>, records: &[Record], maps: &[Kubernetes], container: &Container,
                        streams: &mut Vec<(String, Bound<'py, PyString>)>) -> PyResult<Bound<'py, PyAny>> {
    let k8s = &maps[container.first];
    let metas = container.metas.iter().map(|&m| meta_tuple(py, &maps[m])).collect::<PyResult<Vec<_>>>()?;
    let mut stream_objects = Vec::with_capacity(container.lines.len());
    for &(index, _, _) in &container.lines {
        stream_objects.push(match &records[index].stream {
            None => py.None().into_bound(py),
            Some(stream) => match streams.iter().find(|(seen, _)| seen == stream) {
                Some((_, object)) => object.clone().into_any(),
                None => {
                    let object = PyString::new(py, stream);
                    streams.push((stream.to_string(), object.clone()));
                    object.into_any()
                }
            },
        });
    }
    let items = [
        PyString::new(py, &k8s.namespace_name).into_any(),
        PyString::new(py, &k8s.pod_name).into_any(),
        PyString::new(py, &k8s.container_name).into_any(),
        PyList::new(py, metas)?.into_any(),
        PyList::new(py, container.lines.iter().map(|line| line.1))?.into_any(),
        PyList::new(py, container.lines.iter().map(|line| PyString::new(py, &records[line.0].log)))?.into_any(),
        PyList::new(py, stream_objects)?.into_any(),
        PyList::new(py, container.lines.iter().map(|line| line.2))?.into_any(),
    ];
    Ok(PyTuple::new(py, items)?.into_any())
}

/// A JSON array of fluent-bit records -> [(namespace, pod_name, container_name, metas, ts, logs,
/// streams, meta_of)], containers in the order of their first line, lines in arrival order; None
/// when the body is anything else, or any record is invalid or outside this fast path.
/// Parsing and checking run without the GIL.
#[pyfunction]
fn decode_json_batch<'py>(py: Python<'py>, body: &[u8], max_line_bytes: usize) -> PyResult<Option<Bound<'py, PyList>>> {
    let parsed = py.detach(|| {
        let text = std::str::from_utf8(body).ok()?;
        if !surrogates_paired(body) {
            return None;
        }
        let records: Vec<Record> = serde_json::from_str(text).ok()?;
        let (maps, containers) = group(&records, max_line_bytes)?;
        Some((records, maps, containers))
    });
    let Some((records, maps, containers)) = parsed else {
        return Ok(None);
    };
    let mut streams = Vec::new();
    let tuples = containers.iter().map(|c| container_tuple(py, &records, &maps, c, &mut streams)).collect::<PyResult<Vec<_>>>()?;
    Ok(Some(PyList::new(py, tuples)?))
}

/// common.row_keys.content_hash of each (stream, log): blake2b with an 8-byte digest of
/// "<stream or ''>\x00<log>", big-endian, its low 47 bits.
#[pyfunction]
fn content_hashes<'py>(py: Python<'py>, streams: &Bound<'py, PyList>, logs: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
    if streams.len() != logs.len() {
        return Err(pyo3::exceptions::PyValueError::new_err("streams and logs differ in length"));
    }
    let mut hashes = Vec::with_capacity(logs.len());
    let mut digest = [0u8; 8];
    for (stream, log) in streams.iter().zip(logs.iter()) {
        let mut hasher = Blake2bVar::new(8).expect("8 is a valid blake2b digest size");
        if !stream.is_none() {
            hasher.update(stream.cast::<PyString>()?.to_str()?.as_bytes());
        }
        hasher.update(b"\x00");
        hasher.update(log.cast::<PyString>()?.to_str()?.as_bytes());
        hasher.finalize_variable(&mut digest).expect("the buffer is the digest's size");
        hashes.push(u64::from_be_bytes(digest) & HASH_MASK);
    }
    PyList::new(py, hashes)
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(decode_json_batch, module)?)?;
    module.add_function(wrap_pyfunction!(content_hashes, module)?)?;
    module.add_function(wrap_pyfunction!(blocks::partition_blocks, module)?)?;
    module.add_function(wrap_pyfunction!(loki::decode_loki_json, module)?)?;
    Ok(())
}
