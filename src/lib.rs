//! weft: deterministic record, replay and schedule exploration for multithreaded x86-64
//! guests.
//!
//! The [`machine`] runs a static ELF guest on the weft board: one unicorn-engine instance per
//! vCPU over shared RAM, one vCPU executing at a time, a schedule controller deciding at
//! every scheduling point who goes next. Strategies (weft-recorder) make the decisions, sinks
//! (weft-trace) take the events, the replayer (weft-replayer) checks a re-execution against
//! a trace. The `weft` binary is a thin command line over these.

pub mod machine;
