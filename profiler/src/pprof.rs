//! The pprof writer: a gzipped `profile.proto`, as `go tool pprof`,
//! Pyroscope and Parca read it.
//!
//! The message is small enough to encode by hand (a varint, a key, a
//! length-delimited field), which keeps a protobuf code generator and its
//! build-time dependencies out of the profiler; gzip comes from `flate2`.
//!
//! What is written:
//!
//! - One sample type per event, named after the event (`WallNs`, ...) with
//!   its unit (`nanoseconds` or `count`); `default_sample_type` is the
//!   chosen event (`THESEUS_EVENT`, wall time unless set), so
//!   `go tool pprof` opens on it and `-sample_index=BusyNs` picks another.
//! - One sample per stack of the [`Profile`], the leaf first as pprof
//!   wants, with one value per event. Stacks that print alike are merged.
//!   Task samples carry a label `outcome` (`completed`, `cancelled`,
//!   `panicked`, `unfinished`), so `-tagfocus=outcome=cancelled` works;
//!   the leaf's name has the same outcome suffix as in the callgrind file.
//! - One function per (name, file), one location per (function, line),
//!   all in one mapping named after the program and marked as having
//!   functions, files and lines: the profile is symbolized, so no binary is
//!   needed to read it.
//! - `time_nanos` and `duration_nanos`: the span the profile covers (for an
//!   interval snapshot, that interval), which profile stores use to place it
//!   in time.

use crate::profile::{Event, Frame, Profile};
use crate::task_record::Outcome;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::collections::HashMap;
use std::io::{self, Write};
use std::time::UNIX_EPOCH;

/// Writes `profile` as gzipped pprof, opening on `event`.
pub fn write<W: Write + ?Sized>(out: &mut W, profile: &Profile, event: Event) -> io::Result<()> {
    let bytes = encode(profile, event);
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?.flush()
}

/// The `profile.proto` message, not compressed.
pub fn encode(profile: &Profile, event: Event) -> Vec<u8> {
    let mut tables = Tables::default();
    let events = profile.events();
    let mut message = Message::default();
    for e in events {
        let mut value_type = Message::default();
        value_type.int(1, tables.string(e.name()));
        value_type.int(2, tables.string(e.unit()));
        message.message(1, &value_type);
    }
    for (locations, outcome, values) in tables.samples(profile, events) {
        let mut sample = Message::default();
        sample.packed(1, &locations);
        let values: Vec<u64> = values.iter().map(|&v| v.min(i64::MAX as u64)).collect();
        sample.packed(2, &values);
        if let Some(outcome) = outcome {
            let mut label = Message::default();
            label.int(1, tables.string("outcome"));
            label.int(2, tables.string(outcome_name(outcome)));
            sample.message(3, &label);
        }
        message.message(2, &sample);
    }
    tables.write_into(&mut message, &profile.header.cmd);
    let comments = [
        format!("theseus {}", env!("CARGO_PKG_VERSION")),
        format!("pid {}: {}", profile.header.pid, profile.header.cmd),
    ];
    let comments: Vec<i64> = comments.iter().map(|c| tables.string(c)).collect();
    // pprof wants the default among the sample types: CpuNs of a profile
    // without the sampler is not, so it opens on wall time then.
    let default = if events.contains(&event) {
        event
    } else {
        Event::WallNs
    };
    let default_type = tables.string(default.name());
    // The string table is complete only now: every string above has its index.
    for s in &tables.strings {
        message.bytes(6, s.as_bytes());
    }
    let start = profile
        .start
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    message.int(9, i64::try_from(start).unwrap_or(i64::MAX));
    let duration = profile.duration.as_nanos();
    message.int(10, i64::try_from(duration).unwrap_or(i64::MAX));
    for c in comments {
        message.int(13, c);
    }
    message.int(14, default_type);
    message.buf
}

/// The id of the one mapping: the program, already symbolized.
const MAPPING: u64 = 1;

/// The program's name for the mapping: the command's first word. pprof
/// warns about a main binary without a name, and needs no binary, since
/// every location already has its function, file and line.
fn program(cmd: &str) -> &str {
    cmd.split_whitespace().next().unwrap_or("theseus")
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Completed => "completed",
        Outcome::Panicked => "panicked",
        Outcome::Cancelled => "cancelled",
        Outcome::Unfinished => "unfinished",
    }
}

/// The tables of a `profile.proto` being encoded: strings, functions and
/// locations, each entry once, numbered as the format wants.
#[derive(Default)]
struct Tables {
    /// Index 0 is the empty string, as the format requires.
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    /// (name, file) string indices, by function id - 1.
    functions: Vec<(i64, i64)>,
    function_ids: HashMap<(i64, i64), u64>,
    /// (function id, line), by location id - 1.
    locations: Vec<(u64, u32)>,
    location_ids: HashMap<(u64, u32), u64>,
}

/// A merged sample: location ids leaf first, outcome, one value per event.
type MergedSample = (Vec<u64>, Option<Outcome>, Vec<u64>);

impl Tables {
    fn string(&mut self, s: &str) -> i64 {
        if self.strings.is_empty() {
            self.strings.push(String::new());
            self.string_ids.insert(String::new(), 0);
        }
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn location(&mut self, frame: &Frame) -> u64 {
        let key = (self.string(&frame.name), self.string(&frame.file));
        let next = self.functions.len() as u64 + 1;
        let function = *self.function_ids.entry(key).or_insert(next);
        if function == next {
            self.functions.push(key);
        }
        let next = self.locations.len() as u64 + 1;
        let location = *self
            .location_ids
            .entry((function, frame.line))
            .or_insert(next);
        if location == next {
            self.locations.push((function, frame.line));
        }
        location
    }

    /// Writes the mapping, the locations and the functions into `message`.
    fn write_into(&mut self, message: &mut Message, cmd: &str) {
        let mut mapping = Message::default();
        mapping.uint(1, MAPPING);
        mapping.int(5, self.string(program(cmd)));
        // has_functions, has_filenames, has_line_numbers.
        for has in [7, 8, 9] {
            mapping.uint(has, 1);
        }
        message.message(3, &mapping);
        for (id, &(function, line)) in self.locations.iter().enumerate() {
            let mut line_message = Message::default();
            line_message.uint(1, function);
            line_message.int(2, i64::from(line));
            let mut location = Message::default();
            location.uint(1, id as u64 + 1);
            location.uint(2, MAPPING);
            location.message(4, &line_message);
            message.message(4, &location);
        }
        for (id, &(name, file)) in self.functions.iter().enumerate() {
            let mut function = Message::default();
            function.uint(1, id as u64 + 1);
            function.int(2, name);
            // No system name: pprof takes a function whose name equals its
            // system name as not yet demangled, and its demangler cuts
            // `(...)` out of names with `::`, which would drop ` (cancelled)`.
            function.int(4, file);
            message.message(5, &function);
        }
    }

    /// The profile's samples as location ids, merged where they print alike,
    /// in the order first seen; samples with no value at all are left out.
    fn samples(&mut self, profile: &Profile, events: &[Event]) -> Vec<MergedSample> {
        let mut merged: Vec<MergedSample> = Vec::new();
        let mut index: HashMap<(Vec<u64>, Option<Outcome>), usize> = HashMap::new();
        for sample in profile.samples() {
            let values: Vec<u64> = events.iter().map(|&e| sample.value(e)).collect();
            if values.iter().all(|&v| v == 0) {
                continue;
            }
            let locations: Vec<u64> = sample
                .frames
                .iter()
                .rev()
                .map(|frame| self.location(frame))
                .collect();
            match index.entry((locations.clone(), sample.outcome)) {
                std::collections::hash_map::Entry::Occupied(at) => {
                    for (total, v) in merged[*at.get()].2.iter_mut().zip(&values) {
                        *total = total.saturating_add(*v);
                    }
                }
                std::collections::hash_map::Entry::Vacant(at) => {
                    at.insert(merged.len());
                    merged.push((locations, sample.outcome, values));
                }
            }
        }
        merged
    }
}

/// A protobuf message being encoded. Zero scalars are left out, as proto3
/// does: a reader takes an absent field as zero.
#[derive(Default)]
struct Message {
    buf: Vec<u8>,
}

/// Wire types.
const VARINT: u32 = 0;
const LEN: u32 = 2;

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
    }

    /// An `int64`: negative values are ten-byte varints, as protobuf has it.
    fn int(&mut self, field: u32, v: i64) {
        self.uint(field, v as u64);
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LEN);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    fn message(&mut self, field: u32, message: &Message) {
        self.bytes(field, &message.buf);
    }

    /// A packed repeated varint field (`uint64` or non-negative `int64`).
    fn packed(&mut self, field: u32, values: &[u64]) {
        if values.is_empty() {
            return;
        }
        let mut packed = Message::default();
        for &v in values {
            packed.varint(v);
        }
        self.bytes(field, &packed.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_encode_as_protobuf_does() {
        let mut m = Message::default();
        m.uint(1, 150);
        assert_eq!(m.buf, [0x08, 0x96, 0x01]);
        let mut m = Message::default();
        m.int(2, -1);
        assert_eq!(m.buf.len(), 11);
        assert_eq!(m.buf[0], 0x10);
        let mut m = Message::default();
        m.packed(4, &[3, 270, 86942]);
        assert_eq!(m.buf, [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]);
        let mut m = Message::default();
        m.uint(5, 0);
        assert!(m.buf.is_empty());
    }

    #[test]
    fn the_string_table_starts_with_the_empty_string() {
        let mut tables = Tables::default();
        assert_eq!(tables.string("WallNs"), 1);
        assert_eq!(tables.string(""), 0);
        assert_eq!(tables.string("WallNs"), 1);
        assert_eq!(tables.strings, ["", "WallNs"]);
    }
}
