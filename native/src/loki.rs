//! `decode_loki_json`: a Loki push body in JSON (fluent-bit's `loki` output) straight into the
//! columns a batch is queued in, one tuple per container, as `decode_json_batch` does for
//! `POST /write`.
//!
//! common.loki_push stays the rule. This takes only bodies whose every stream and entry is valid
//! and plain: label names Loki accepts, the namespace, pod and container labels present and
//! non-blank, timestamps of 1 to 19 ASCII digits within int64, no line over the size bound, and
//! structured metadata that meets no stream label. For anything else it answers None and the
//! Python decoder decides, with its own messages. tests/unit/test_native_loki.py checks both agree.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use crate::{same_items, surrogates_paired, valid_name, Labels, Text};

#[derive(Deserialize)]
struct Push<'a> {
    #[serde(borrow)]
    streams: Vec<Stream<'a>>,
}

#[derive(Deserialize)]
struct Stream<'a> {
    #[serde(borrow)]
    stream: Labels<'a>,
    #[serde(borrow)]
    values: Vec<Entry<'a>>,
}

/// ["<epoch ns>", "<line>"] or ["<epoch ns>", "<line>", {metadata} or null]; nothing more.
struct Entry<'a> {
    timestamp: Cow<'a, str>,
    line: Cow<'a, str>,
    metadata: Option<Labels<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Entry<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for EntryVisitor<'a> {
            type Value = Entry<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an entry array")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let Text(timestamp) = seq.next_element()?.ok_or_else(|| de::Error::custom("no timestamp"))?;
                let Text(line) = seq.next_element()?.ok_or_else(|| de::Error::custom("no line"))?;
                let metadata: Option<Labels<'a>> = seq.next_element::<Option<Labels<'a>>>()?.flatten();
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("more than three elements"));
                }
                Ok(Entry { timestamp, line, metadata })
            }
        }
        deserializer.deserialize_seq(EntryVisitor(PhantomData))
    }
}

/// Loki's (Prometheus's) label name: [a-zA-Z_][a-zA-Z0-9_]*.
fn label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Epoch nanoseconds from 1 to 19 ASCII digits, within int64.
fn epoch_ns(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().and_then(|ns| i64::try_from(ns).ok())
}

type Items<'b> = Vec<(&'b str, &'b str)>;

struct Container<'b> {
    names: [&'b str; 3],
    metas: Vec<Option<Items<'b>>>,
    ts: Vec<i64>,
    logs: Vec<&'b str>,
    streams: Vec<Option<&'b str>>,
    meta_of: Vec<usize>,
}

impl<'b> Container<'b> {
    fn meta_index(&mut self, labels: Option<Items<'b>>) -> usize {
        match self.metas.iter().position(|meta| same_items(meta.as_deref(), labels.as_deref())) {
            Some(index) => index,
            None => {
                self.metas.push(labels);
                self.metas.len() - 1
            }
        }
    }
}

fn group<'b>(push: &'b Push, names: &[String; 4], max_line_bytes: usize) -> Option<Vec<Container<'b>>> {
    let [namespace_label, pod_label, container_label, stream_label] = names;
    let mut containers: Vec<Container<'b>> = Vec::new();
    let mut container_of: HashMap<[&'b str; 3], usize> = HashMap::new();
    for stream in &push.streams {
        let labels = &stream.stream.0;
        if !labels.iter().all(|(name, _)| label_name(name)) {
            return None;
        }
        let get = |wanted: &str| labels.iter().find(|(name, _)| name == wanted).map(|(_, value)| value.as_ref());
        let (namespace, pod, container) = (get(namespace_label)?, get(pod_label)?, get(container_label)?);
        if !(valid_name(namespace) && valid_name(pod) && valid_name(container)) {
            return None;
        }
        let stream_value = get(stream_label);
        let rest: Items<'b> = labels.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
            .filter(|(k, _)| ![namespace_label, pod_label, container_label, stream_label].iter().any(|n| n == k))
            .collect();
        let base = if rest.is_empty() { None } else { Some(rest) };
        if stream.values.is_empty() {
            continue; // a container is placed by its first line, as the Python decoder's rows are grouped
        }
        let names = [namespace, pod, container];
        let at = *container_of.entry(names).or_insert_with(|| {
            containers.push(Container { names, metas: Vec::new(), ts: Vec::new(), logs: Vec::new(),
                                        streams: Vec::new(), meta_of: Vec::new() });
            containers.len() - 1
        });
        let lines = &mut containers[at];
        let mut base_meta = None;
        for entry in &stream.values {
            let ts = epoch_ns(&entry.timestamp)?;
            if entry.line.len() > max_line_bytes {
                return None; // truncated by the Python decoder
            }
            let meta = match &entry.metadata {
                Some(Labels(metadata)) if !metadata.is_empty() => {
                    if metadata.iter().any(|(name, _)| labels.iter().any(|(sent, _)| sent == name)) {
                        return None; // renamed <name>_extracted by the Python decoder
                    }
                    let mut items = base.clone().unwrap_or_default();
                    items.extend(metadata.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
                    lines.meta_index(Some(items))
                }
                _ => *base_meta.get_or_insert_with(|| lines.meta_index(base.clone())),
            };
            lines.ts.push(ts);
            lines.logs.push(&entry.line);
            lines.streams.push(stream_value);
            lines.meta_of.push(meta);
        }
    }
    Some(containers)
}

fn container_tuple<'py>(py: Python<'py>, container: &Container) -> PyResult<Bound<'py, PyTuple>> {
    let metas = container.metas.iter().map(|meta| {
        let labels = match meta {
            None => py.None().into_bound(py),
            Some(items) => {
                let dict = PyDict::new(py);
                for (key, value) in items {
                    dict.set_item(*key, *value)?;
                }
                dict.into_any()
            }
        };
        PyTuple::new(py, [py.None().into_bound(py), py.None().into_bound(py), py.None().into_bound(py), labels])
    }).collect::<PyResult<Vec<_>>>()?;
    let mut stream_objects: Vec<(&str, Bound<'py, PyString>)> = Vec::new();
    let streams = container.streams.iter().map(|stream| match stream {
        None => py.None().into_bound(py),
        Some(stream) => match stream_objects.iter().find(|(seen, _)| seen == stream) {
            Some((_, object)) => object.clone().into_any(),
            None => {
                let object = PyString::new(py, stream);
                stream_objects.push((stream, object.clone()));
                object.into_any()
            }
        },
    }).collect::<Vec<_>>();
    let items: [Bound<'py, PyAny>; 8] = [
        PyString::new(py, container.names[0]).into_any(),
        PyString::new(py, container.names[1]).into_any(),
        PyString::new(py, container.names[2]).into_any(),
        PyList::new(py, metas)?.into_any(),
        PyList::new(py, &container.ts)?.into_any(),
        PyList::new(py, container.logs.iter().map(|log| PyString::new(py, log)))?.into_any(),
        PyList::new(py, streams)?.into_any(),
        PyList::new(py, &container.meta_of)?.into_any(),
    ];
    PyTuple::new(py, items)
}

/// A Loki JSON push body -> [(namespace, pod_name, container_name, metas, ts, logs, streams,
/// meta_of)], containers in the order first named, lines in arrival order; None when the body
/// is anything else, or any stream or entry is outside this fast path. `names` are the labels
/// read as (namespace, pod, container, stream). Parsing and checking run without the GIL.
#[pyfunction]
pub fn decode_loki_json<'py>(py: Python<'py>, body: &[u8], names: [String; 4], max_line_bytes: usize)
                             -> PyResult<Option<Bound<'py, PyList>>> {
    let parsed = py.detach(|| {
        let text = std::str::from_utf8(body).ok()?;
        if !surrogates_paired(body) {
            return None;
        }
        serde_json::from_str::<Push>(text).ok()
    });
    let Some(push) = parsed else {
        return Ok(None);
    };
    let Some(containers) = group(&push, &names, max_line_bytes) else {
        return Ok(None);
    };
    let tuples = containers.iter().map(|c| container_tuple(py, c)).collect::<PyResult<Vec<_>>>()?;
    Ok(Some(PyList::new(py, tuples)?))
}
