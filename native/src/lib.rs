//! auditwire's native encoder: a record's canonical bytes and seal, and its Elasticsearch bulk
//! entry, written in one pass over the record's fields; and a record id's text.
//!
//! The pure-Python path (`auditwire.canonical`, `auditwire.seal`, `auditwire.ecs`) defines every
//! byte; this module writes the same bytes for the records a process makes on every request,
//! and declines (returns `None`) for anything else: metadata, a timestamp not in UTC, text the
//! standard encoders would escape differently (lone surrogates), a float whose shortest form
//! Python writes with an exponent, an integer beyond 64 bits. The caller then takes the pure
//! path, so declining is always safe; the suite compares both paths on generated records.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDateTime, PyDict, PyFloat, PyInt, PyString, PyTuple, PyType, PyTzInfo,
};
use pyo3::types::{PyDateAccess, PyTimeAccess, PyTzInfoAccess};
use ring::digest::{Context, SHA256};
use std::collections::HashMap;
use std::io::Write as _;

/// Why a record is left to the pure path: nothing more is needed, the caller only falls back.
struct Decline;

impl From<PyErr> for Decline {
    fn from(_: PyErr) -> Self {
        Decline
    }
}

type Read<T> = Result<T, Decline>;

/// JSON text as both reference encoders write it (no ASCII escaping, the two-character escapes
/// for `"`, `\`, backspace, form feed, newline, carriage return and tab, `\u00xx` for the other
/// control characters).
fn put_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if !any_escape(bytes) {
        out.extend_from_slice(bytes);
    } else {
        put_escaped(out, bytes);
    }
    out.push(b'"');
}

/// Whether any byte of `bytes` needs escaping, eight at a time (the last word padded with
/// spaces, which never do).
#[inline]
fn any_escape(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        if needs_escape(u64::from_le_bytes(eight)) {
            return true;
        }
    }
    let rest = words.remainder();
    let mut eight = [b' '; 8];
    eight[..rest.len()].copy_from_slice(rest);
    needs_escape(u64::from_le_bytes(eight))
}

fn put_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if byte >= 0x20 && byte != b'"' && byte != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..at]);
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any of eight bytes is a control character, `"` or `\` (the classic test for a
/// zero byte, on the word and on its differences from the two characters).
#[inline(always)]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    (below_space
        | (quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash))
        & HIGH
        != 0
}

/// A float as Python's `repr` writes it, for the range where that is positional notation
/// (Rust's shortest round-trip digits, and `.0` for a whole number); elsewhere Python writes an
/// exponent, which is declined.
fn put_float(out: &mut Vec<u8>, value: f64) -> Read<()> {
    let size = value.abs();
    if !(size == 0.0 || (1e-4..1e16).contains(&size)) {
        return Err(Decline);
    }
    let start = out.len();
    let _ = write!(out, "{}", value);
    if !out[start..].contains(&b'.') {
        out.extend_from_slice(b".0");
    }
    Ok(())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// An integer in decimal (the formatting machinery costs ten times this, per number).
fn put_int(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `value` as `width` decimal digits, zero-padded (the timestamp's fields).
fn put_digits(out: &mut [u8], value: u32, width: usize) {
    let mut rest = value;
    for at in (0..width).rev() {
        out[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
}

/// One record's fields, read once: text as Python strings (borrowed as UTF-8 when written),
/// parts as their fields.
struct Person<'py> {
    kind: Bound<'py, PyString>,
    id: Option<Bound<'py, PyString>>,
    email: Option<Bound<'py, PyString>>,
    name: Option<Bound<'py, PyString>>,
}

struct Request<'py> {
    id: Option<Bound<'py, PyString>>,
    method: Option<Bound<'py, PyString>>,
    route: Option<Bound<'py, PyString>>,
    path: Option<Bound<'py, PyString>>,
    status: Option<i64>,
    duration_ms: Option<f64>,
    peer_ip: Option<Bound<'py, PyString>>,
}

struct Trace<'py> {
    trace_id: Bound<'py, PyString>,
    span_id: Option<Bound<'py, PyString>>,
}

struct Device<'py> {
    id: Option<Bound<'py, PyString>>,
    browser: Option<Bound<'py, PyString>>,
    browser_version: Option<Bound<'py, PyString>>,
    os: Option<Bound<'py, PyString>>,
    os_version: Option<Bound<'py, PyString>>,
    device: Option<Bound<'py, PyString>>,
}

struct Integrity<'py> {
    origin: Bound<'py, PyString>,
    writer: Bound<'py, PyString>,
    seq: i64,
    prev: Bound<'py, PyString>,
    hash: Option<Bound<'py, PyString>>,
}

struct Record<'py> {
    id: Bound<'py, PyString>,
    action: Bound<'py, PyString>,
    category: Bound<'py, PyString>,
    actor: Person<'py>,
    target: Option<Person<'py>>,
    outcome: Bound<'py, PyString>,
    ip_address: Option<Bound<'py, PyString>>,
    user_agent: Option<Bound<'py, PyString>>,
    timestamp: [u8; 24],
    message: Option<Bound<'py, PyString>>,
    tenant: Option<Bound<'py, PyString>>,
    request: Option<Request<'py>>,
    trace: Option<Trace<'py>>,
    device: Option<Device<'py>>,
    integrity: Option<Integrity<'py>>,
}

fn text<'py>(value: Bound<'py, PyAny>) -> Read<Bound<'py, PyString>> {
    let text = value.cast_into_exact::<PyString>().map_err(|_| Decline)?;
    text.to_str()?; // lone surrogates: the encoders refuse or escape them; declined
    Ok(text)
}

fn optional_text<'py>(value: Bound<'py, PyAny>) -> Read<Option<Bound<'py, PyString>>> {
    if value.is_none() {
        Ok(None)
    } else {
        text(value).map(Some)
    }
}

fn int(value: Bound<'_, PyAny>) -> Read<i64> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(Decline);
    }
    Ok(value.extract::<i64>()?)
}

/// The record's classes, in the order `bind` takes them, and the fields read from each.
const CLASSES: [(&str, &[&str]); 7] = [
    (
        "AuditRecord",
        &[
            "id",
            "action",
            "category",
            "actor",
            "target",
            "outcome",
            "ip_address",
            "user_agent",
            "metadata",
            "timestamp",
            "message",
            "tenant",
            "request",
            "trace",
            "device",
            "integrity",
        ],
    ),
    ("Actor", &["type", "id", "email", "name"]),
    ("Target", &["type", "id", "email", "name"]),
    (
        "RequestInfo",
        &[
            "id",
            "method",
            "route",
            "path",
            "status",
            "duration_ms",
            "peer_ip",
        ],
    ),
    ("TraceInfo", &["trace_id", "span_id"]),
    (
        "DeviceInfo",
        &[
            "id",
            "browser",
            "browser_version",
            "os",
            "os_version",
            "device",
        ],
    ),
    (
        "IntegrityInfo",
        &["origin", "writer", "seq", "prev", "hash"],
    ),
];
const RECORD: usize = 0;
const ACTOR: usize = 1;
const TARGET: usize = 2;
const REQUEST: usize = 3;
const TRACE: usize = 4;
const DEVICE: usize = 5;
const INTEGRITY: usize = 6;

/// Where a class keeps its fields: the record classes are slotted dataclasses, so each field
/// is a pointer at a fixed offset in the object, read directly instead of through attribute
/// lookup (a quarter of the encoder's cost when it went through `getattr`).
struct Layout {
    kind: Py<PyType>,
    offsets: Vec<isize>,
}

static LAYOUTS: PyOnceLock<Vec<Layout>> = PyOnceLock::new();

fn layout_of(class: &Bound<'_, PyType>, fields: &[&str]) -> PyResult<Layout> {
    let mut offsets = Vec::with_capacity(fields.len());
    for field in fields {
        let descriptor = class.getattr(*field)?;
        // SAFETY: the descriptor is checked to be a member descriptor (a slot) before its
        // member definition is read; the class it belongs to is kept alive by `kind`.
        let offset = unsafe {
            let pointer = descriptor.as_ptr();
            if ffi::Py_TYPE(pointer) != &raw mut ffi::PyMemberDescr_Type {
                return Err(PyTypeError::new_err(format!("{field} is not a slot")));
            }
            let member = (*pointer.cast::<ffi::PyMemberDescrObject>()).d_member;
            let member = &*member.cast::<ffi::PyMemberDef>();
            if member.type_code != ffi::Py_T_OBJECT_EX {
                return Err(PyTypeError::new_err(format!(
                    "{field} is not an object slot"
                )));
            }
            member.offset
        };
        offsets.push(offset);
    }
    Ok(Layout {
        kind: class.clone().unbind(),
        offsets,
    })
}

/// Learn where the record's classes keep their fields (once, at import), from `classes`: each
/// class of `CLASSES` by its name.
#[pyfunction]
fn bind(py: Python<'_>, classes: &Bound<'_, PyDict>) -> PyResult<()> {
    let mut given = Vec::with_capacity(CLASSES.len());
    for (name, _) in CLASSES {
        let class = classes
            .get_item(name)?
            .ok_or_else(|| PyTypeError::new_err(format!("bind needs the class {name}")))?;
        given.push(class.cast_into::<PyType>()?);
    }
    if let Some(bound) = LAYOUTS.get(py) {
        // Bound once per process; binding the same classes again changes nothing.
        return if bound
            .iter()
            .zip(&given)
            .all(|(layout, class)| class.is(layout.kind.bind(py)))
        {
            Ok(())
        } else {
            Err(PyTypeError::new_err(
                "other record classes are bound already",
            ))
        };
    }
    let layouts = given
        .iter()
        .zip(CLASSES)
        .map(|(class, (_, fields))| layout_of(class, fields))
        .collect::<PyResult<Vec<_>>>()?;
    LAYOUTS
        .set(py, layouts)
        .map_err(|_| PyTypeError::new_err("bound concurrently"))
}

/// An object's fields, if it is exactly the class `which` (a subclass may lay them out
/// differently: declined).
struct Fields<'a, 'py> {
    object: &'a Bound<'py, PyAny>,
    offsets: &'a [isize],
}

impl<'a, 'py> Fields<'a, 'py> {
    fn of(object: &'a Bound<'py, PyAny>, which: usize) -> Read<Self> {
        let layout = LAYOUTS
            .get(object.py())
            .ok_or(Decline)?
            .get(which)
            .ok_or(Decline)?;
        if !object.get_type().is(layout.kind.bind(object.py())) {
            return Err(Decline);
        }
        Ok(Fields {
            object,
            offsets: &layout.offsets,
        })
    }

    /// Field number `at`, as its class declares them in `CLASSES`.
    fn get(&self, at: usize) -> Read<Bound<'py, PyAny>> {
        // SAFETY: the object's type was checked to be the class whose layout gave this offset;
        // an object slot holds a strong reference or NULL (unset), which is declined.
        unsafe {
            let slot = self.object.as_ptr().cast::<u8>().offset(self.offsets[at]);
            let value = *slot.cast::<*mut ffi::PyObject>();
            if value.is_null() {
                return Err(Decline);
            }
            Ok(Bound::from_borrowed_ptr(self.object.py(), value))
        }
    }
}

/// `2026-12-02T20:46:53.123Z`, from a datetime in UTC (the only zone a record holds; another is
/// declined).
fn timestamp(value: Bound<'_, PyAny>) -> Read<[u8; 24]> {
    let moment = value.cast_into_exact::<PyDateTime>().map_err(|_| Decline)?;
    let utc = PyTzInfo::utc(moment.py())?;
    match moment.get_tzinfo() {
        Some(zone) if zone.is(&*utc) => {}
        _ => return Err(Decline),
    }
    let year = u32::try_from(moment.get_year()).map_err(|_| Decline)?;
    let mut out = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut out[0..4], year, 4);
    put_digits(&mut out[5..7], moment.get_month().into(), 2);
    put_digits(&mut out[8..10], moment.get_day().into(), 2);
    put_digits(&mut out[11..13], moment.get_hour().into(), 2);
    put_digits(&mut out[14..16], moment.get_minute().into(), 2);
    put_digits(&mut out[17..19], moment.get_second().into(), 2);
    put_digits(&mut out[20..23], moment.get_microsecond() / 1000, 3);
    Ok(out)
}

/// An optional part of the record (`None`, or exactly the class `which`), read by `fill`.
fn part<'py, T>(
    value: Bound<'py, PyAny>,
    which: usize,
    fill: impl FnOnce(&Fields<'_, 'py>) -> Read<T>,
) -> Read<Option<T>> {
    if value.is_none() {
        return Ok(None);
    }
    fill(&Fields::of(&value, which)?).map(Some)
}

fn person<'py>(fields: &Fields<'_, 'py>) -> Read<Person<'py>> {
    Ok(Person {
        kind: text(fields.get(0)?)?,
        id: optional_text(fields.get(1)?)?,
        email: optional_text(fields.get(2)?)?,
        name: optional_text(fields.get(3)?)?,
    })
}

fn read<'py>(record: &Bound<'py, PyAny>, with_integrity: bool) -> Read<Record<'py>> {
    let fields = Fields::of(record, RECORD)?;
    match fields.get(8)?.cast_exact::<PyDict>() {
        Ok(metadata) if metadata.is_empty() => {}
        _ => return Err(Decline),
    }
    let actor = fields.get(3)?;
    Ok(Record {
        id: text(fields.get(0)?)?,
        action: text(fields.get(1)?)?,
        category: text(fields.get(2)?)?,
        actor: person(&Fields::of(&actor, ACTOR)?)?,
        target: part(fields.get(4)?, TARGET, person)?,
        outcome: text(fields.get(5)?)?,
        ip_address: optional_text(fields.get(6)?)?,
        user_agent: optional_text(fields.get(7)?)?,
        timestamp: timestamp(fields.get(9)?)?,
        message: optional_text(fields.get(10)?)?,
        tenant: optional_text(fields.get(11)?)?,
        request: part(fields.get(12)?, REQUEST, |part| {
            let status = part.get(4)?;
            let duration = part.get(5)?;
            Ok(Request {
                id: optional_text(part.get(0)?)?,
                method: optional_text(part.get(1)?)?,
                route: optional_text(part.get(2)?)?,
                path: optional_text(part.get(3)?)?,
                status: if status.is_none() {
                    None
                } else {
                    Some(int(status)?)
                },
                duration_ms: if duration.is_none() {
                    None
                } else {
                    Some(
                        duration
                            .cast_into_exact::<PyFloat>()
                            .map_err(|_| Decline)?
                            .value(),
                    )
                },
                peer_ip: optional_text(part.get(6)?)?,
            })
        })?,
        trace: part(fields.get(13)?, TRACE, |part| {
            Ok(Trace {
                trace_id: text(part.get(0)?)?,
                span_id: optional_text(part.get(1)?)?,
            })
        })?,
        device: part(fields.get(14)?, DEVICE, |part| {
            Ok(Device {
                id: optional_text(part.get(0)?)?,
                browser: optional_text(part.get(1)?)?,
                browser_version: optional_text(part.get(2)?)?,
                os: optional_text(part.get(3)?)?,
                os_version: optional_text(part.get(4)?)?,
                device: optional_text(part.get(5)?)?,
            })
        })?,
        integrity: if with_integrity {
            part(fields.get(15)?, INTEGRITY, |part| {
                Ok(Integrity {
                    origin: text(part.get(0)?)?,
                    writer: text(part.get(1)?)?,
                    seq: int(part.get(2)?)?,
                    prev: text(part.get(3)?)?,
                    hash: optional_text(part.get(4)?)?,
                })
            })?
        } else {
            None
        },
    })
}

fn utf8<'a>(text: &'a Bound<'_, PyString>) -> &'a str {
    // Checked when read (`text`): cannot fail here.
    text.to_str().unwrap_or_default()
}

/// A JSON object being written: keys in the order given, a comma before all but the first.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    #[inline(always)]
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn text(&mut self, key: &str, value: &Bound<'_, PyString>) {
        let out = self.key(key);
        put_str(out, utf8(value));
    }

    fn some_text(&mut self, key: &str, value: &Option<Bound<'_, PyString>>) {
        if let Some(value) = value {
            self.text(key, value);
        }
    }

    /// The value, or `null`: the record's API form has every key.
    fn text_or_null(&mut self, key: &str, value: &Option<Bound<'_, PyString>>) {
        match value {
            Some(value) => self.text(key, value),
            None => self.key(key).extend_from_slice(b"null"),
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    /// An object under `key`, filled by `fill`, and left out, key and all, if it stays empty
    /// (the ECS document carries only the objects a record has).
    fn nested(&mut self, key: &str, fill: impl FnOnce(&mut Object<'_>)) {
        let (mark, first) = (self.out.len(), self.first);
        let empty = {
            let mut child = Object::open(self.key(key));
            fill(&mut child);
            let empty = child.first;
            child.close();
            empty
        };
        if empty {
            self.out.truncate(mark);
            self.first = first;
        }
    }
}

/// The API form of a person (actor or target), keys sorted.
fn canonical_person(out: &mut Vec<u8>, who: &Person<'_>) {
    let mut object = Object::open(out);
    object.some_text("email", &who.email);
    object.some_text("id", &who.id);
    object.some_text("name", &who.name);
    object.text("type", &who.kind);
    object.close();
}

/// The canonical bytes (`auditwire.canonical`): the API form with sorted keys, the integrity
/// part given (the chain's place, without the hash) in place of the record's own.
fn canonical(
    out: &mut Vec<u8>,
    record: &Record<'_>,
    origin: &str,
    writer: &str,
    seq: i64,
    prev: &str,
) -> Read<()> {
    let mut object = Object::open(out);
    object.text("action", &record.action);
    canonical_person(object.key("actor"), &record.actor);
    object.text("category", &record.category);
    match &record.device {
        None => object.key("device").extend_from_slice(b"null"),
        Some(device) => {
            let mut part = Object::open(object.key("device"));
            part.some_text("browser", &device.browser);
            part.some_text("browserVersion", &device.browser_version);
            part.some_text("device", &device.device);
            part.some_text("id", &device.id);
            part.some_text("os", &device.os);
            part.some_text("osVersion", &device.os_version);
            part.close();
        }
    }
    object.text("id", &record.id);
    {
        let mut part = Object::open(object.key("integrity"));
        put_str(part.key("origin"), origin);
        put_str(part.key("prev"), prev);
        put_int(part.key("seq"), seq);
        put_str(part.key("writer"), writer);
        part.close();
    }
    object.text_or_null("ipAddress", &record.ip_address);
    object.text_or_null("message", &record.message);
    object.key("metadata").extend_from_slice(b"{}");
    object.text("outcome", &record.outcome);
    match &record.request {
        None => object.key("request").extend_from_slice(b"null"),
        Some(request) => {
            let mut part = Object::open(object.key("request"));
            if let Some(duration) = request.duration_ms {
                put_float(part.key("durationMs"), duration)?;
            }
            part.some_text("id", &request.id);
            part.some_text("method", &request.method);
            part.some_text("path", &request.path);
            part.some_text("peerIp", &request.peer_ip);
            part.some_text("route", &request.route);
            if let Some(status) = request.status {
                put_int(part.key("status"), status);
            }
            part.close();
        }
    }
    match &record.target {
        None => object.key("target").extend_from_slice(b"null"),
        Some(target) => canonical_person(object.key("target"), target),
    }
    object.text_or_null("tenant", &record.tenant);
    object.key("timestamp").extend_from_slice(b"\"");
    object.out.extend_from_slice(&record.timestamp);
    object.out.push(b'"');
    match &record.trace {
        None => object.key("trace").extend_from_slice(b"null"),
        Some(trace) => {
            let mut part = Object::open(object.key("trace"));
            part.some_text("spanId", &trace.span_id);
            part.text("traceId", &trace.trace_id);
            part.close();
        }
    }
    object.text_or_null("userAgent", &record.user_agent);
    object.close();
    Ok(())
}

/// A tuple of text as a JSON list.
fn put_names(out: &mut Vec<u8>, names: &Bound<'_, PyTuple>) -> Read<()> {
    out.push(b'[');
    for (at, name) in names.iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        put_str(out, utf8(&text(name)?));
    }
    out.push(b']');
    Ok(())
}

fn canonical_bytes(
    record: &Bound<'_, PyAny>,
    origin: &str,
    writer: &str,
    seq: i64,
    prev: &str,
) -> Read<Vec<u8>> {
    let record = read(record, false)?;
    let mut out = Vec::with_capacity(1024);
    canonical(&mut out, &record, origin, writer, seq, prev)?;
    Ok(out)
}

/// The canonical bytes of `record` sealed at this place in a chain (without its hash), or
/// `None` where the pure path must write them.
#[pyfunction]
fn canonical_record<'py>(
    py: Python<'py>,
    record: &Bound<'py, PyAny>,
    origin: &str,
    writer: &str,
    seq: i64,
    prev: &str,
) -> Option<Bound<'py, PyBytes>> {
    let bytes = canonical_bytes(record, origin, writer, seq, prev).ok()?;
    Some(PyBytes::new(py, &bytes))
}

/// The hex SHA-256 of `domain` and the canonical bytes: the record's hash at this place in a
/// chain, or `None` where the pure path must compute it.
#[pyfunction]
fn seal_digest(
    domain: &[u8],
    record: &Bound<'_, PyAny>,
    origin: &str,
    writer: &str,
    seq: i64,
    prev: &str,
) -> Option<String> {
    let bytes = canonical_bytes(record, origin, writer, seq, prev).ok()?;
    let mut hasher = Context::new(&SHA256);
    hasher.update(domain);
    hasher.update(&bytes);
    let mut hex = String::with_capacity(64);
    for &byte in hasher.finish().as_ref() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Some(hex)
}

/// Crockford's base32, as record ids spell it (`auditwire._ids`).
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A record id's text: `log_`, the low 50 bits of `ms` as 10 characters and the 80 bits of
/// `random` as 16, most significant first (`auditwire._ids` keeps the time and the randomness,
/// and its monotonic order; this only spells them).
#[pyfunction]
fn record_id(py: Python<'_>, ms: u64, random: u128) -> PyResult<Bound<'_, PyString>> {
    if random >> 80 != 0 {
        return Err(PyValueError::new_err("an id's random part has 80 bits"));
    }
    let mut out = *b"log_00000000000000000000000000";
    for at in 0..10 {
        out[4 + at] = BASE32[((ms >> (45 - 5 * at)) & 31) as usize];
    }
    for at in 0..16 {
        out[14 + at] = BASE32[((random >> (75 - 5 * at)) & 31) as usize];
    }
    let text = std::str::from_utf8(&out).map_err(|_| PyValueError::new_err("not ASCII"))?;
    Ok(PyString::new(py, text))
}

/// The ECS writer, made once with the constants the pure path defines (`auditwire.ecs`), so
/// they have one home.
#[pyclass(frozen, module = "auditwire_native")]
struct Documents {
    ecs_version: String,
    namespace: String,
    dataset: String,
    schema_version: i64,
    /// A record's outcome → `event.outcome` (three pairs: a list beats hashing).
    outcomes: Vec<(String, String)>,
}

impl Documents {
    fn entry_bytes(
        &self,
        record: &Bound<'_, PyAny>,
        index: &str,
        category: &Bound<'_, PyAny>,
        kind: &Bound<'_, PyAny>,
    ) -> Read<Vec<u8>> {
        let category = category.cast_exact::<PyTuple>().map_err(|_| Decline)?;
        let kind = kind.cast_exact::<PyTuple>().map_err(|_| Decline)?;
        let record = read(record, true)?;
        let mut out = Vec::with_capacity(2048);
        out.extend_from_slice(b"{\"create\":{\"_index\":");
        put_str(&mut out, index);
        out.extend_from_slice(b",\"_id\":");
        put_str(&mut out, utf8(&record.id));
        out.extend_from_slice(b"}}\n");
        self.document(&mut out, &record, category, kind)?;
        Ok(out)
    }

    /// `auditwire.ecs.to_ecs`, as orjson writes it (keys in the order built there).
    fn document(
        &self,
        out: &mut Vec<u8>,
        record: &Record<'_>,
        category: &Bound<'_, PyTuple>,
        kind: &Bound<'_, PyTuple>,
    ) -> Read<()> {
        let outcome = utf8(&record.outcome);
        let (_, outcome) = self
            .outcomes
            .iter()
            .find(|(ours, _)| ours == outcome)
            .ok_or(Decline)?;
        let mut doc = Object::open(out);
        {
            let out = doc.key("@timestamp");
            out.push(b'"');
            out.extend_from_slice(&record.timestamp);
            out.push(b'"');
        }
        {
            let mut ecs = Object::open(doc.key("ecs"));
            put_str(ecs.key("version"), &self.ecs_version);
            ecs.close();
        }
        doc.some_text("message", &record.message);
        {
            let mut event = Object::open(doc.key("event"));
            event.text("id", &record.id);
            put_str(event.key("kind"), "event");
            put_str(event.key("module"), &self.namespace);
            put_str(event.key("dataset"), &self.dataset);
            event.text("action", &record.action);
            put_names(event.key("category"), category)?;
            put_names(event.key("type"), kind)?;
            put_str(event.key("outcome"), outcome);
            if let Some(request) = &record.request {
                if let Some(duration) = request.duration_ms {
                    let nanoseconds = (duration * 1_000_000.0).round_ties_even();
                    if !nanoseconds.is_finite() || nanoseconds.abs() >= 9.0e18 {
                        return Err(Decline);
                    }
                    put_int(event.key("duration"), nanoseconds as i64);
                }
            }
            event.close();
        }
        let user_target = record
            .target
            .as_ref()
            .filter(|target| utf8(&target.kind) == "user");
        doc.nested("user", |user| {
            user.some_text("id", &record.actor.id);
            user.some_text("email", &record.actor.email);
            user.some_text("name", &record.actor.name);
            if let Some(target) = user_target {
                user.nested("target", |person| {
                    person.some_text("id", &target.id);
                    person.some_text("email", &target.email);
                    person.some_text("name", &target.name);
                });
            }
        });
        if let Some(ip) = &record.ip_address {
            for name in ["source", "client"] {
                let mut part = Object::open(doc.key(name));
                part.text("ip", ip);
                part.close();
            }
        }
        doc.nested("user_agent", |agent| {
            agent.some_text("original", &record.user_agent);
            if let Some(device) = &record.device {
                agent.some_text("name", &device.browser);
                agent.some_text("version", &device.browser_version);
                agent.nested("os", |os| {
                    os.some_text("name", &device.os);
                    os.some_text("version", &device.os_version);
                });
                agent.nested("device", |part| part.some_text("name", &device.device));
            }
        });
        if let Some(Device { id: Some(id), .. }) = &record.device {
            let mut part = Object::open(doc.key("device"));
            part.text("id", id);
            part.close();
        }
        let peer_ip = record.request.as_ref().and_then(|r| r.peer_ip.as_ref());
        if let Some(request) = &record.request {
            doc.nested("http", |http| {
                http.nested("request", |part| {
                    part.some_text("id", &request.id);
                    part.some_text("method", &request.method);
                });
                if let Some(status) = request.status {
                    http.nested("response", |part| put_int(part.key("status_code"), status));
                }
            });
            if let Some(path) = &request.path {
                let mut part = Object::open(doc.key("url"));
                part.text("path", path);
                part.close();
            }
        }
        if let Some(trace) = &record.trace {
            let mut part = Object::open(doc.key("trace"));
            part.text("id", &trace.trace_id);
            part.close();
            if let Some(span) = &trace.span_id {
                let mut part = Object::open(doc.key("span"));
                part.text("id", span);
                part.close();
            }
        }
        if let Some(tenant) = &record.tenant {
            let mut part = Object::open(doc.key("organization"));
            part.text("id", tenant);
            part.close();
        }
        {
            let ip = record.ip_address.as_ref().map(utf8);
            let peer = peer_ip.map(utf8);
            let mut ips: Vec<&str> = ip.into_iter().chain(peer).collect();
            ips.sort_unstable();
            ips.dedup();
            let mut users: Vec<&str> = [
                record.actor.id.as_ref(),
                record.actor.email.as_ref(),
                user_target.and_then(|t| t.id.as_ref()),
            ]
            .into_iter()
            .flatten()
            .map(utf8)
            .collect();
            users.sort_unstable();
            users.dedup();
            if !ips.is_empty() || !users.is_empty() {
                let mut related = Object::open(doc.key("related"));
                for (name, values) in [("ip", &ips), ("user", &users)] {
                    if values.is_empty() {
                        continue;
                    }
                    let out = related.key(name);
                    out.push(b'[');
                    for (at, value) in values.iter().enumerate() {
                        if at > 0 {
                            out.push(b',');
                        }
                        put_str(out, value);
                    }
                    out.push(b']');
                }
                related.close();
            }
        }
        {
            let mut own = Object::open(doc.key(&self.namespace));
            put_int(own.key("schema_version"), self.schema_version);
            own.text("category", &record.category);
            own.text("outcome", &record.outcome);
            {
                let mut actor = Object::open(own.key("actor"));
                actor.text("type", &record.actor.kind);
                actor.close();
            }
            if let Some(target) = &record.target {
                // The target's API form, in its declared order.
                let mut part = Object::open(own.key("target"));
                part.text("type", &target.kind);
                part.some_text("id", &target.id);
                part.some_text("email", &target.email);
                part.some_text("name", &target.name);
                part.close();
            }
            own.key("metadata").extend_from_slice(b"{}");
            if let Some(request) = &record.request {
                if request.route.is_some() || request.peer_ip.is_some() {
                    let mut part = Object::open(own.key("request"));
                    part.some_text("route", &request.route);
                    part.some_text("peer_ip", &request.peer_ip);
                    part.close();
                }
            }
            if let Some(integrity) = &record.integrity {
                let mut part = Object::open(own.key("integrity"));
                part.text("origin", &integrity.origin);
                part.text("writer", &integrity.writer);
                put_int(part.key("seq"), integrity.seq);
                part.text("prev", &integrity.prev);
                part.some_text("hash", &integrity.hash);
                part.close();
            }
            own.close();
        }
        doc.close();
        Ok(())
    }
}

#[pymethods]
impl Documents {
    #[new]
    fn new(
        ecs_version: String,
        namespace: String,
        dataset: String,
        schema_version: i64,
        outcomes: HashMap<String, String>,
    ) -> Self {
        Documents {
            ecs_version,
            namespace,
            dataset,
            schema_version,
            outcomes: outcomes.into_iter().collect(),
        }
    }

    /// The bulk `create` action for `index` and the record's ECS document, as two NDJSON
    /// lines, or `None` where the pure path must write them. `category` and `type` are the
    /// record's ECS classification (tuples of text, from the catalog).
    #[pyo3(signature = (record, index, category, r#type))]
    fn entry<'py>(
        &self,
        py: Python<'py>,
        record: &Bound<'py, PyAny>,
        index: &str,
        category: &Bound<'py, PyAny>,
        r#type: &Bound<'py, PyAny>,
    ) -> Option<Bound<'py, PyBytes>> {
        let bytes = self.entry_bytes(record, index, category, r#type).ok()?;
        Some(PyBytes::new(py, &bytes))
    }
}

#[pymodule]
fn auditwire_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let fields = pyo3::types::PyDict::new(module.py());
    for (class, names) in CLASSES {
        fields.set_item(class, PyTuple::new(module.py(), names)?)?;
    }
    module.add("FIELDS", fields)?;
    module.add_function(wrap_pyfunction!(bind, module)?)?;
    module.add_class::<Documents>()?;
    module.add_function(wrap_pyfunction!(canonical_record, module)?)?;
    module.add_function(wrap_pyfunction!(seal_digest, module)?)?;
    module.add_function(wrap_pyfunction!(record_id, module)?)?;
    Ok(())
}
