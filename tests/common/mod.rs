//! Helpers shared by the end-to-end tests: the guests built by build.rs, running the `weft`
//! binary, and scratch directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of a guest compiled from tests/guests/NAME.c or examples/NAME.c.
pub fn guest(name: &str) -> PathBuf {
    let p = Path::new(env!("OUT_DIR"))
        .join("guests")
        .join(format!("{name}.elf"));
    assert!(p.exists(), "guest {name} was not built: {}", p.display());
    p
}

/// Path of a static glibc program built from tests/guests/linux/NAME.c or
/// examples/linux/NAME.c.
pub fn linux_guest(name: &str) -> PathBuf {
    let p = Path::new(env!("OUT_DIR"))
        .join("guests/linux")
        .join(format!("{name}.elf"));
    assert!(
        p.exists(),
        "Linux guest {name} was not built: {}",
        p.display()
    );
    p
}

/// Run `weft` with `args`; returns its output.
pub fn weft<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("weft runs")
}

/// Exit code, stdout and stderr of a run, as text.
pub fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A fresh scratch directory, removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// `weft record GUEST -o OUT ARGS...` for a built guest -> (exit code, stdout, stderr).
pub fn record(name: &str, out: &Path, args: &[&str]) -> (i32, String, String) {
    record_elf(&guest(name), out, args)
}

/// `weft record ELF -o OUT ARGS...` -> (exit code, stdout, stderr).
pub fn record_elf(g: &Path, out: &Path, args: &[&str]) -> (i32, String, String) {
    let mut a = vec![
        "record".to_string(),
        g.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    text(&weft(&a))
}
