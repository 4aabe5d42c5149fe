//! `partition_blocks`: a write's containers (with their line ids) cut into blocks, per partition:
//! common.blocks's `group_by_partition`, `cut_blocks`, `encode_block` (all but the compression,
//! left to Python's zstandard) and `PartitionLines.series`, compiled.
//!
//! Python's functions stay the rule; tests/unit/test_native.py checks that both give the same
//! partitions, block keys, decoded block contents and series. Block bytes are msgpack, as
//! `encode_block` writes them; a reader decodes either.

use std::collections::HashMap;

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::intern;

use crate::same_items;

const NS_PER_SECOND: i64 = 1_000_000_000;
const FORMAT_VERSION: u64 = 1;

/// A container's metadata value: (host, pod_id, docker_id, labels), as Python objects.
struct RawMeta<'py> {
    texts: [Option<Bound<'py, PyString>>; 3],
    labels: Option<Vec<(Bound<'py, PyString>, Bound<'py, PyString>)>>,
}

/// One ContainerLines and its line ids, as Python objects.
struct RawContainer<'py> {
    names: [Bound<'py, PyString>; 3],
    metas: Vec<RawMeta<'py>>,
    ts: Vec<i64>,
    logs: Vec<Bound<'py, PyString>>,
    chars: Vec<usize>,
    streams: Vec<Option<Bound<'py, PyString>>>,
    meta_of: Vec<usize>,
    ids: Vec<i64>,
}

struct Meta<'a> {
    texts: [Option<&'a str>; 3],
    labels: Option<Vec<(&'a str, &'a str)>>,
}

impl Meta<'_> {
    /// Python's equality of two metadata tuples: the labels compared as dicts (in any order).
    fn same(&self, other: &Meta) -> bool {
        self.texts == other.texts && same_items(self.labels.as_deref(), other.labels.as_deref())
    }

    /// tuple(sorted(labels.items())), () without labels: the series index's form.
    fn sorted_labels(&self) -> Vec<(&str, &str)> {
        let mut items = self.labels.clone().unwrap_or_default();
        items.sort_unstable();
        items
    }
}

struct Container<'a> {
    names: [&'a str; 3],
    metas: Vec<Meta<'a>>,
    ts: &'a [i64],
    logs: Vec<&'a str>,
    chars: &'a [usize],
    streams: Vec<Option<&'a str>>,
    meta_of: &'a [usize],
    ids: &'a [i64],
}

/// One partition's lines, in arrival order: (container, line) pairs, and each line's index into
/// the partition's metas, themselves (container, meta) pairs.
struct Partition {
    container: usize,
    bucket: i64,
    metas: Vec<(usize, usize)>,
    lines: Vec<(usize, usize)>,
    meta_of: Vec<usize>,
}

fn optional_text<'py>(value: Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyString>>> {
    if value.is_none() {
        return Ok(None);
    }
    Ok(Some(value.cast_into::<PyString>()?))
}

fn raw_meta<'py>(meta: Bound<'py, PyAny>) -> PyResult<RawMeta<'py>> {
    let text = |index: usize| -> PyResult<Option<Bound<'py, PyString>>> { optional_text(meta.get_item(index)?) };
    let labels = meta.get_item(3)?;
    let labels = if labels.is_none() {
        None
    } else {
        let dict = labels.cast_into::<PyDict>()?;
        let mut items = Vec::with_capacity(dict.len());
        for (key, value) in dict.iter() {
            items.push((key.cast_into::<PyString>()?, value.cast_into::<PyString>()?));
        }
        Some(items)
    };
    Ok(RawMeta { texts: [text(0)?, text(1)?, text(2)?], labels })
}

fn strings<'py>(list: &Bound<'py, PyList>) -> PyResult<Vec<Bound<'py, PyString>>> {
    list.iter().map(|item| Ok(item.cast_into::<PyString>()?)).collect()
}

fn raw_container<'py>(py: Python<'py>, lines: &Bound<'py, PyAny>, ids: Bound<'py, PyAny>) -> PyResult<RawContainer<'py>> {
    let name = |attribute: &Bound<'py, PyString>| -> PyResult<Bound<'py, PyString>> {
        Ok(lines.getattr(attribute)?.cast_into::<PyString>()?)
    };
    let names = [name(intern!(py, "namespace"))?, name(intern!(py, "pod_name"))?, name(intern!(py, "container_name"))?];
    let metas = lines.getattr(intern!(py, "metas"))?.cast_into::<PyList>()?.iter().map(raw_meta).collect::<PyResult<Vec<_>>>()?;
    let ts: Vec<i64> = lines.getattr(intern!(py, "ts"))?.extract()?;
    let logs = strings(&lines.getattr(intern!(py, "logs"))?.cast_into::<PyList>()?)?;
    let chars = logs.iter().map(|log| log.len()).collect::<PyResult<Vec<_>>>()?;
    let streams = lines.getattr(intern!(py, "streams"))?.cast_into::<PyList>()?.iter().map(optional_text).collect::<PyResult<Vec<_>>>()?;
    let meta_of: Vec<usize> = lines.getattr(intern!(py, "meta_of"))?.extract()?;
    let ids: Vec<i64> = ids.extract()?;
    let count = ts.len();
    if count == 0 {
        return Err(PyValueError::new_err("a container without lines"));
    }
    if logs.len() != count || streams.len() != count || meta_of.len() != count || ids.len() != count
        || meta_of.iter().any(|&m| m >= metas.len()) {
        return Err(PyValueError::new_err("a container's columns differ in length, or name a metadata value it lacks"));
    }
    Ok(RawContainer { names, metas, ts, logs, chars, streams, meta_of, ids })
}

fn text<'a>(value: &'a Option<Bound<'_, PyString>>) -> PyResult<Option<&'a str>> {
    value.as_ref().map(|text| text.to_str()).transpose()
}

fn view<'a>(raw: &'a RawContainer) -> PyResult<Container<'a>> {
    let metas = raw.metas.iter().map(|meta| {
        let labels = match &meta.labels {
            None => None,
            Some(items) => Some(items.iter().map(|(k, v)| Ok((k.to_str()?, v.to_str()?))).collect::<PyResult<Vec<_>>>()?),
        };
        Ok(Meta { texts: [text(&meta.texts[0])?, text(&meta.texts[1])?, text(&meta.texts[2])?], labels })
    }).collect::<PyResult<Vec<_>>>()?;
    Ok(Container {
        names: [raw.names[0].to_str()?, raw.names[1].to_str()?, raw.names[2].to_str()?],
        metas,
        ts: &raw.ts,
        logs: raw.logs.iter().map(|log| log.to_str()).collect::<PyResult<Vec<_>>>()?,
        chars: &raw.chars,
        streams: raw.streams.iter().map(text).collect::<PyResult<Vec<_>>>()?,
        meta_of: &raw.meta_of,
        ids: &raw.ids,
    })
}

fn bucket(ts: i64, bucket_seconds: i64) -> i64 {
    let seconds = ts.div_euclid(NS_PER_SECOND);
    seconds - seconds.rem_euclid(bucket_seconds)
}

/// group_by_partition: partitions in the order first named, lines in arrival order, a
/// container's metadata values renumbered into its partition's (equal ones shared).
fn group(containers: &[Container], bucket_seconds: i64) -> Vec<Partition> {
    let mut partitions: Vec<Partition> = Vec::new();
    let mut index_of: HashMap<([&str; 3], i64), usize> = HashMap::new();
    for (c, lines) in containers.iter().enumerate() {
        let mut by_bucket: Vec<(i64, Vec<usize>)> = Vec::new();
        for (i, &ts) in lines.ts.iter().enumerate() {
            let b = bucket(ts, bucket_seconds);
            match by_bucket.iter_mut().find(|(seen, _)| *seen == b) {
                Some((_, indices)) => indices.push(i),
                None => by_bucket.push((b, vec![i])),
            }
        }
        for (b, indices) in by_bucket {
            let at = *index_of.entry((lines.names, b)).or_insert_with(|| {
                partitions.push(Partition { container: c, bucket: b, metas: Vec::new(), lines: Vec::new(), meta_of: Vec::new() });
                partitions.len() - 1
            });
            let part = &mut partitions[at];
            let renumber: Vec<usize> = lines.metas.iter().enumerate().map(|(m, meta)| {
                match part.metas.iter().position(|&(pc, pm)| containers[pc].metas[pm].same(meta)) {
                    Some(found) => found,
                    None => {
                        part.metas.push((c, m));
                        part.metas.len() - 1
                    }
                }
            }).collect();
            for i in indices {
                part.lines.push((c, i));
                part.meta_of.push(renumber[lines.meta_of[i]]);
            }
        }
    }
    partitions
}

fn write_text(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => rmp::encode::write_str(out, text).expect("writing to a Vec cannot fail"),
        None => rmp::encode::write_nil(out).expect("writing to a Vec cannot fail"),
    }
}

fn write_len(out: &mut Vec<u8>, len: usize) -> PyResult<()> {
    let len = u32::try_from(len).map_err(|_| PyValueError::new_err("a block's column is too long for msgpack"))?;
    rmp::encode::write_array_len(out, len).expect("writing to a Vec cannot fail");
    Ok(())
}

/// encode_block: the lines at `order` (sorted by (ts, id), identities distinct) as
/// (first_ts, block_id, max_ts, line_count, msgpack columns).
fn encode_block<'py>(py: Python<'py>, containers: &[Container], part: &Partition, order: &[usize]) -> PyResult<Bound<'py, PyTuple>> {
    let line = |k: usize| part.lines[order[k]];
    let ts: Vec<i64> = (0..order.len()).map(|k| { let (c, i) = line(k); containers[c].ts[i] }).collect();
    let ids: Vec<i64> = (0..order.len()).map(|k| { let (c, i) = line(k); containers[c].ids[i] }).collect();
    let mut used: Vec<usize> = order.iter().map(|&o| part.meta_of[o]).collect();
    used.sort_unstable();
    used.dedup();
    let text_bytes: usize = order.iter().map(|&o| { let (c, i) = part.lines[o]; containers[c].logs[i].len() }).sum();
    let mut out: Vec<u8> = Vec::with_capacity(256 + text_bytes + order.len() * 32);
    let w = "writing to a Vec cannot fail";
    write_len(&mut out, 8)?;
    rmp::encode::write_uint(&mut out, FORMAT_VERSION).expect(w);
    rmp::encode::write_sint(&mut out, ts[0]).expect(w);
    write_len(&mut out, ts.len())?;
    let mut previous = ts[0];
    for &stamp in &ts {
        rmp::encode::write_sint(&mut out, stamp - previous).expect(w);
        previous = stamp;
    }
    write_len(&mut out, ids.len())?;
    for &id in &ids {
        rmp::encode::write_sint(&mut out, id).expect(w);
    }
    write_len(&mut out, order.len())?;
    for k in 0..order.len() {
        let (c, i) = line(k);
        write_text(&mut out, Some(containers[c].logs[i]));
    }
    write_len(&mut out, order.len())?;
    for k in 0..order.len() {
        let (c, i) = line(k);
        write_text(&mut out, containers[c].streams[i]);
    }
    write_len(&mut out, used.len())?;
    for &u in &used {
        let (c, m) = part.metas[u];
        let meta = &containers[c].metas[m];
        write_len(&mut out, 4)?;
        for text in meta.texts {
            write_text(&mut out, text);
        }
        match &meta.labels {
            None => rmp::encode::write_nil(&mut out).expect(w),
            Some(items) => {
                let len = u32::try_from(items.len()).map_err(|_| PyValueError::new_err("too many labels"))?;
                rmp::encode::write_map_len(&mut out, len).expect(w);
                for (key, value) in items {
                    write_text(&mut out, Some(key));
                    write_text(&mut out, Some(value));
                }
            }
        }
    }
    write_len(&mut out, order.len())?;
    for &o in order {
        let new = used.binary_search(&part.meta_of[o]).expect("every used value is listed");
        rmp::encode::write_uint(&mut out, new as u64).expect(w);
    }
    let mut hasher = Blake2bVar::new(8).expect("8 is a valid blake2b digest size");
    for stamp in &ts {
        hasher.update(&stamp.to_ne_bytes());
    }
    for id in &ids {
        hasher.update(&id.to_ne_bytes());
    }
    let mut digest = [0u8; 8];
    hasher.finalize_variable(&mut digest).expect("the buffer is the digest's size");
    let block_id = (u64::from_be_bytes(digest) >> 1) as i64;
    let items: [Bound<'py, PyAny>; 5] = [
        ts[0].into_pyobject(py)?.into_any(),
        block_id.into_pyobject(py)?.into_any(),
        ts[ts.len() - 1].into_pyobject(py)?.into_any(),
        order.len().into_pyobject(py)?.into_any(),
        PyBytes::new(py, &out).into_any(),
    ];
    PyTuple::new(py, items)
}

/// cut_blocks: sorted by (ts, id), the last line of an identity kept, cut at max_lines, at
/// max_text_chars of text and at span_ns.
fn cut<'py>(py: Python<'py>, containers: &[Container], part: &Partition, max_lines: usize, max_text_chars: usize,
            span_ns: i64) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    let key = |o: usize| { let (c, i) = part.lines[o]; (containers[c].ts[i], containers[c].ids[i]) };
    let count = part.lines.len();
    let mut order: Vec<usize> = (0..count).collect();
    if !(1..count).all(|o| key(o - 1) < key(o)) {
        order.sort_by_key(|&o| key(o)); // stable: equal identities stay in arrival order
        let sorted = order;
        order = (0..sorted.len()).filter(|&k| k + 1 == sorted.len() || key(sorted[k + 1]) != key(sorted[k]))
            .map(|k| sorted[k]).collect();
    }
    let ts: Vec<i64> = order.iter().map(|&o| key(o).0).collect();
    let mut sizes = Vec::with_capacity(order.len());
    let mut total = 0usize;
    for &o in &order {
        let (c, i) = part.lines[o];
        total += containers[c].chars[i];
        sizes.push(total);
    }
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let base = if start > 0 { sizes[start - 1] } else { 0 };
        let by_text = start + 1 + sizes[start + 1..].partition_point(|&size| size <= base + max_text_chars);
        let limit = ts[start] as i128 + span_ns as i128;
        let by_span = start + 1 + ts[start + 1..].partition_point(|&stamp| (stamp as i128) < limit);
        let end = (start + max_lines).min(order.len()).min(by_text).min(by_span);
        blocks.push(encode_block(py, containers, part, &order[start..end])?);
        start = end;
    }
    Ok(blocks)
}

/// PartitionLines.series: each distinct (stream, sorted label items) of the partition's lines.
fn series<'py>(py: Python<'py>, containers: &[Container], part: &Partition) -> PyResult<Bound<'py, PyList>> {
    // A partition's lines mostly share one or two (stream, metadata) pairs: a short list, and the
    // last pair compared first, cost less than hashing every line's.
    let mut pairs: Vec<(Option<&str>, usize)> = Vec::new();
    for (o, &(c, i)) in part.lines.iter().enumerate() {
        let pair = (containers[c].streams[i], part.meta_of[o]);
        if pairs.last() != Some(&pair) && !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    let mut seen: Vec<(Option<&str>, Vec<(&str, &str)>)> = Vec::new();
    let entries = PyList::empty(py);
    for (stream, m) in pairs {
        let (c, meta) = part.metas[m];
        let entry = (stream, containers[c].metas[meta].sorted_labels());
        if seen.contains(&entry) {
            continue;
        }
        let items = entry.1.iter().map(|&(k, v)| PyTuple::new(py, [k, v])).collect::<PyResult<Vec<_>>>()?;
        let stream_object = match stream {
            Some(stream) => PyString::new(py, stream).into_any(),
            None => py.None().into_bound(py),
        };
        entries.append(PyTuple::new(py, [stream_object, PyTuple::new(py, items)?.into_any()])?)?;
        seen.push(entry);
    }
    Ok(entries)
}

/// [(ContainerLines, line ids)] -> [((namespace, pod_name, container_name, bucket), lines,
/// [(first_ts, block_id, max_ts, line_count, msgpack columns)], [(stream, label items)])]:
/// common.blocks.partition_blocks with the blocks' data not yet compressed.
#[pyfunction]
pub fn partition_blocks<'py>(py: Python<'py>, containers: &Bound<'py, PyList>, bucket_seconds: i64, max_lines: usize,
                             max_text_chars: usize, span_ns: i64) -> PyResult<Bound<'py, PyList>> {
    if bucket_seconds <= 0 || max_lines == 0 || span_ns <= 0 {
        return Err(PyValueError::new_err("bucket_seconds, max_lines and span_ns must be positive"));
    }
    let raws = containers.iter().map(|pair| {
        let (lines, ids): (Bound<'py, PyAny>, Bound<'py, PyAny>) = pair.extract()?;
        raw_container(py, &lines, ids)
    }).collect::<PyResult<Vec<_>>>()?;
    let views = raws.iter().map(view).collect::<PyResult<Vec<_>>>()?;
    let result = PyList::empty(py);
    for part in group(&views, bucket_seconds) {
        let names = &raws[part.container].names;
        let key: [Bound<'py, PyAny>; 4] = [names[0].clone().into_any(), names[1].clone().into_any(),
                                           names[2].clone().into_any(), part.bucket.into_pyobject(py)?.into_any()];
        let blocks = cut(py, &views, &part, max_lines, max_text_chars, span_ns)?;
        let items: [Bound<'py, PyAny>; 4] = [
            PyTuple::new(py, key)?.into_any(),
            part.lines.len().into_pyobject(py)?.into_any(),
            PyList::new(py, blocks)?.into_any(),
            series(py, &views, &part)?.into_any(),
        ];
        result.append(PyTuple::new(py, items)?)?;
    }
    Ok(result)
}
