//! Builds the guest programs from source: every examples/*.c (board guests, embedded in the
//! `weft` binary, so `weft demo` and `weft examples` need no files), every
//! examples/linux/*.c (static glibc pthread programs for the Linux user-mode platform, also
//! embedded), every tests/guests/*.c and tests/guests/linux/*.{c,cpp,rs} (used by the end-to-end
//! tests). Board guests land in OUT_DIR/guests/NAME.elf, Linux guests in
//! OUT_DIR/guests/linux/NAME.elf (a Linux guest named *_pie is built static-pie, a Rust one
//! named *_abort with panic=abort). Nothing prebuilt is checked in.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The flags every board guest is built with: freestanding, static, non-PIE, no red zone
/// (the board has no signal frames, but hypercalls must not clobber below RSP either way).
const BOARD_CFLAGS: &[&str] = &[
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

/// The flags every Linux guest is built with: an ordinary `gcc -static -pthread` program
/// linked against the host's glibc, non-PIE so its addresses are fixed.
const LINUX_CFLAGS: &[&str] = &[
    "-O2",
    "-g",
    "-static",
    "-pthread",
    "-fno-pie",
    "-no-pie",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wl,--build-id=none",
];

/// How one kind of guest (board or Linux) is compiled.
struct Kind<'a> {
    flags: &'a [&'a str],
    /// Passed as `-I`: the board ABI header's directory.
    include: Option<&'a Path>,
    /// The C++ compiler, for kinds that build C++ programs too.
    cxx: Option<&'a str>,
}

/// One guest program built from `src` into `elf`.
struct Guest {
    name: String,
    src: PathBuf,
    elf: PathBuf,
}

/// Compiles every `*.c` (with `cc`) and, for Linux guests, every `*.cpp` (with `cxx`,
/// as C++17) directly in `dir` (relative to the repository; not its subdirectories) into
/// `out/NAME.elf`, in name order.
fn build_dir(cc: &str, kind: &Kind, dir: &str, out: &Path) -> Vec<Guest> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::create_dir_all(out).unwrap();
    let mut srcs: Vec<PathBuf> = fs::read_dir(root.join(dir))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    let linux = kind.cxx.is_some();
    srcs.retain(|p| {
        p.extension()
            .is_some_and(|e| e == "c" || (linux && (e == "cpp" || e == "rs")))
    });
    srcs.sort();
    srcs.into_iter()
        .map(|src| {
            let name = src.file_stem().unwrap().to_string_lossy().to_string();
            let elf = out.join(format!("{name}.elf"));
            match (kind.cxx, src.extension().and_then(|e| e.to_str())) {
                (Some(cxx), Some("cpp")) => build(cxx, kind, &src, &elf),
                (_, Some("rs")) => build_rust(&src, &elf),
                _ => build(cc, kind, &src, &elf),
            }
            Guest { name, src, elf }
        })
        .collect()
}

fn build(cc: &str, kind: &Kind, src: &Path, out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(cc);
    // A Linux guest named *_pie is a static-pie executable.
    let pie = kind.cxx.is_some()
        && src
            .file_stem()
            .is_some_and(|s| s.to_string_lossy().ends_with("_pie"));
    if pie {
        cmd.args(
            kind.flags
                .iter()
                .filter(|f| !matches!(**f, "-fno-pie" | "-no-pie" | "-static")),
        )
        .args(["-static-pie", "-fPIE"]);
    } else {
        cmd.args(kind.flags);
    }
    cmd
        // Paths relative to the repository, so a guest built in any checkout is
        // byte-identical: __FILE__ (assertion messages) as `examples/x.c`, DWARF with
        // comp dir ".".
        .arg(format!("-fmacro-prefix-map={}/=", root.display()))
        .arg(format!("-fdebug-prefix-map={}=.", root.display()));
    if let Some(include) = kind.include {
        cmd.arg("-I").arg(include);
    }
    if src.extension().is_some_and(|e| e == "cpp") {
        cmd.arg("-std=c++17");
    }
    let status = cmd.arg("-o").arg(out).arg(src).status();
    let status = status.unwrap_or_else(|e| {
        panic!(
            "cannot run the compiler `{cc}` to build guest {}: {e}; install gcc and g++ (scripts/setup.sh)",
            src.display()
        )
    });
    assert!(status.success(), "building guest {} failed", src.display());
}

/// A Rust guest: the same compiler that builds weft, linked static against glibc and
/// non-PIE (so its addresses are those of the file); one named `*_abort` with
/// `-C panic=abort`.
fn build_rust(src: &Path, out: &Path) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let abort = src
        .file_stem()
        .is_some_and(|s| s.to_string_lossy().ends_with("_abort"));
    let status = Command::new(&rustc)
        .args(["--edition", "2021", "-O", "-g", "--crate-type", "bin"])
        .args(if abort {
            &["-C", "panic=abort"][..]
        } else {
            &[]
        })
        .args([
            "-C",
            "target-feature=+crt-static",
            "-C",
            "relocation-model=static",
        ])
        .arg(format!("--remap-path-prefix={}/=", root.display()))
        .arg("-o")
        .arg(out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{rustc}` to build guest {}: {e}", src.display()));
    assert!(status.success(), "building guest {} failed", src.display());
}

/// A Rust `&[(name, source, ELF)]` constant embedding `guests`.
fn table(doc: &str, name: &str, guests: &[Guest]) -> String {
    let mut t = format!("/// {doc}: (name, source file, ELF image).\n");
    let _ = writeln!(t, "pub const {name}: &[(&str, &str, &[u8])] = &[");
    for g in guests {
        let _ = writeln!(
            t,
            "    ({:?}, include_str!({:?}), include_bytes!({:?})),",
            g.name,
            g.src.display().to_string(),
            g.elf.display().to_string()
        );
    }
    t.push_str("];\n");
    t
}

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let guests = out.join("guests");
    let linux = guests.join("linux");
    let cc = env::var("WEFT_GUEST_CC").unwrap_or_else(|_| "gcc".to_string());
    let cxx = env::var("WEFT_GUEST_CXX").unwrap_or_else(|_| "g++".to_string());
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/include");
    println!("cargo:rerun-if-changed=examples");
    println!("cargo:rerun-if-changed=tests/guests");
    println!("cargo:rerun-if-env-changed=WEFT_GUEST_CC");
    println!("cargo:rerun-if-env-changed=WEFT_GUEST_CXX");

    let board = Kind {
        flags: BOARD_CFLAGS,
        include: Some(&include),
        cxx: None,
    };
    let examples = build_dir(&cc, &board, "examples", &guests);
    build_dir(&cc, &board, "tests/guests", &guests);
    let glibc = Kind {
        flags: LINUX_CFLAGS,
        include: None,
        cxx: Some(&cxx),
    };
    let linux_examples = build_dir(&cc, &glibc, "examples/linux", &linux);
    build_dir(&cc, &glibc, "tests/guests/linux", &linux);

    let mut rs = table("Built-in example guests", "EXAMPLES", &examples);
    let _ = writeln!(
        rs,
        "/// The guest-side header of the board ABI.\npub const WEFT_H: &str = include_str!({:?});",
        include.join("weft.h").display().to_string()
    );
    rs.push_str(&table(
        "Built-in Linux example guests (static glibc pthread programs)",
        "LINUX_EXAMPLES",
        &linux_examples,
    ));
    fs::write(out.join("examples.rs"), rs).unwrap();
}
