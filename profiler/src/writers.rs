//! Which writer writes each [`Format`]: [`Profile::write`], the one place
//! that knows every writer, so that nothing that only names a format (the
//! settings, the interval files) depends on them; and
//! [`Tracer::write_data`], a tracer's whole run in callgrind format.

use crate::format::Format;
use crate::profile::{Event, Profile};
use crate::tracer::Tracer;
use std::io::{self, Write};

impl Profile {
    /// Writes this profile in `format`. `event` is the one event shown by
    /// the formats that show one (folded stacks and the flame graph), and
    /// the sample type pprof opens on; callgrind always has every event.
    /// An `event` the profile does not have ([`Event::CpuNs`] without the
    /// sampler) is written as zeros: folded stacks then have no line.
    pub fn write<W: Write + ?Sized>(
        &self,
        format: Format,
        event: Event,
        out: &mut W,
    ) -> io::Result<()> {
        match format {
            Format::Callgrind => crate::callgrind::write(out, self),
            Format::Pprof => crate::pprof::write(out, self, event),
            Format::Folded => crate::folded::write(out, self, event),
            Format::FlameGraph => crate::flamegraph::write(out, self, event),
        }
    }
}

impl Tracer {
    /// Writes the profile ([`Tracer::stacks`]) in callgrind format, with
    /// the sampled CPU time ([`Tracer::cpu_stacks`]) as the `CpuNs` event
    /// when a [`crate::Sampler`] has run in this process.
    pub fn write_data<W: Write + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        self.to_profile()
            .write(Format::Callgrind, Event::WallNs, out)
    }
}
