//! weft-gdb: the gdb remote stub of weft (a gdbstub target over a small `Debuggee` trait that
//! the replayer implements, so that no emulator type appears here).
//!
//! Nothing is exported yet: the stub arrives with the gdb work (reverse execution, vCPUs as
//! threads, monitor commands). The crate exists now so that the workspace has its final
//! shape and dependency direction from the start.
