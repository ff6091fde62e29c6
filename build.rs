//! Builds the guest programs from source: every examples/*.c (embedded in the `weft` binary,
//! so `weft demo` and `weft examples` need no files) and every tests/guests/*.c (used by the
//! end-to-end tests). Nothing prebuilt is checked in.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The flags every guest is built with: freestanding, static, non-PIE, no red zone (the
/// board has no signal frames, but hypercalls must not clobber below RSP either way).
const GUEST_CFLAGS: &[&str] = &[
    "-O2",
    "-g",
    "-ffreestanding",
    "-nostdlib",
    "-static",
    "-fno-pie",
    "-no-pie",
    "-mno-red-zone",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fcf-protection=none",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wl,--build-id=none",
];

fn c_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "c"));
    v.sort();
    v
}

fn build(cc: &str, src: &Path, include: &Path, out: &Path) {
    // Paths inside the guest (assertion messages, DWARF) relative to the repository, so the
    // same source gives the same bytes in every checkout.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(cc)
        .args(GUEST_CFLAGS)
        // Paths relative to the repository, so a guest built in any checkout is
        // byte-identical: __FILE__ as `examples/x.c`, DWARF with comp dir ".".
        .arg(format!("-fmacro-prefix-map={}/=", root.display()))
        .arg(format!("-fdebug-prefix-map={}=.", root.display()))
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler `{cc}` to build guest {}: {e}; install gcc",
                src.display()
            )
        });
    assert!(status.success(), "building guest {} failed", src.display());
}

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap()).join("guests");
    fs::create_dir_all(&out_dir).unwrap();
    let cc = env::var("WEFT_GUEST_CC").unwrap_or_else(|_| "gcc".to_string());
    let include = root.join("examples/include");
    println!("cargo:rerun-if-changed=examples");
    println!("cargo:rerun-if-changed=tests/guests");
    println!("cargo:rerun-if-env-changed=WEFT_GUEST_CC");

    let mut table = String::from("/// Built-in example guests: (name, source file, ELF image).\npub const EXAMPLES: &[(&str, &str, &[u8])] = &[\n");
    for src in c_files(&root.join("examples")) {
        let name = src.file_stem().unwrap().to_string_lossy().to_string();
        let elf = out_dir.join(format!("{name}.elf"));
        build(&cc, &src, &include, &elf);
        let _ = writeln!(
            table,
            "    ({name:?}, include_str!({:?}), include_bytes!({:?})),",
            src.display().to_string(),
            elf.display().to_string()
        );
    }
    table.push_str("];\n");
    let _ = writeln!(
        table,
        "/// The guest-side header of the board ABI.\npub const WEFT_H: &str = include_str!({:?});",
        include.join("weft.h").display().to_string()
    );
    for src in c_files(&root.join("tests/guests")) {
        let name = src.file_stem().unwrap().to_string_lossy().to_string();
        build(&cc, &src, &include, &out_dir.join(format!("{name}.elf")));
    }
    fs::write(
        PathBuf::from(env::var("OUT_DIR").unwrap()).join("examples.rs"),
        table,
    )
    .unwrap();
}
