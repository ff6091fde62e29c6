//! weft: deterministic record, replay and schedule exploration for multithreaded x86-64
//! guests.
//!
//! The [`machine`] runs a static ELF guest on the weft board: one unicorn-engine instance per
//! vCPU over shared RAM, one vCPU executing at a time, a schedule controller deciding at
//! every scheduling point who goes next. Strategies (weft-recorder) make the decisions, sinks
//! (weft-trace) take the events, the replayer (weft-replayer) checks a re-execution against
//! a trace. The `weft` binary is a thin command line over these.

pub mod codemap;
pub mod debugger;
pub mod debuginfo;
pub mod explore;
pub mod failure;
pub mod machine;
pub mod races;
pub mod report;
pub mod session;
pub mod tmreport;
pub mod unwind;

/// The built-in example guests, compiled from examples/*.c by build.rs.
pub mod examples {
    include!(concat!(env!("OUT_DIR"), "/examples.rs"));

    /// The built-in example named `name` (file stem, `-` or `_`).
    pub fn find(name: &str) -> Option<(&'static str, &'static str, &'static [u8])> {
        let want = name.replace('-', "_");
        EXAMPLES.iter().copied().find(|(n, _, _)| *n == want)
    }
}
