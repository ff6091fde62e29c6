//! `weft examples`: the built-in example guests, listed or written out.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use weft::examples::{EXAMPLES, LINUX_EXAMPLES, WEFT_H};

use super::EXIT_PASS;

#[derive(Args, Debug)]
pub struct ExamplesArgs {
    /// Write every example's ELF and C source (and include/weft.h) into this directory
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The first sentence of the comment that opens an example's source.
pub fn summary(source: &str) -> String {
    let text: Vec<&str> = source
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches("/*")
                .trim_start_matches("//")
                .trim_start_matches('*')
                .trim()
        })
        .take_while(|l| !l.starts_with("#include"))
        .filter(|l| !l.is_empty() && *l != "/")
        .collect();
    let joined = text.join(" ");
    // The comment opens with "NAME.c - what it is."; keep the description.
    let joined = match joined.split_once(".c - ") {
        Some((name, rest)) if !name.contains(' ') => rest.to_string(),
        _ => joined,
    };
    match joined.find(". ") {
        Some(i) => joined[..=i].to_string(),
        None => joined.trim_end_matches("*/").trim().to_string(),
    }
}

pub fn examples(a: ExamplesArgs) -> Result<ExitCode> {
    match a.out {
        None => {
            let all = EXAMPLES.iter().chain(LINUX_EXAMPLES);
            let w = all.map(|(n, _, _)| n.len()).max().unwrap_or(0);
            println!("On the weft board (freestanding, weft.h):");
            for (name, src, elf) in EXAMPLES {
                println!("  {name:<w$} {:>7} bytes  {}", elf.len(), summary(src));
            }
            println!("\nLinux programs (gcc -static -pthread, glibc; in linux/):");
            for (name, src, elf) in LINUX_EXAMPLES {
                println!("  {name:<w$} {:>7} bytes  {}", elf.len(), summary(src));
            }
            println!("\nwrite them out with: weft examples --out DIR");
        }
        Some(dir) => {
            let inc = dir.join("include");
            std::fs::create_dir_all(&inc)
                .with_context(|| format!("{}: cannot create directory", inc.display()))?;
            std::fs::write(inc.join("weft.h"), WEFT_H)
                .with_context(|| format!("{}: cannot write", inc.join("weft.h").display()))?;
            let linux = dir.join("linux");
            std::fs::create_dir_all(&linux)
                .with_context(|| format!("{}: cannot create directory", linux.display()))?;
            let sets = [(&dir, EXAMPLES), (&linux, LINUX_EXAMPLES)];
            for (to, set) in sets {
                for (name, src, elf) in set {
                    for (path, bytes) in [
                        (to.join(format!("{name}.elf")), *elf),
                        (to.join(format!("{name}.c")), src.as_bytes()),
                    ] {
                        std::fs::write(&path, bytes)
                            .with_context(|| format!("{}: cannot write", path.display()))?;
                    }
                }
            }
            println!(
                "wrote {} board examples (NAME.elf, NAME.c) and include/weft.h, and {} Linux programs in linux/, to {}",
                EXAMPLES.len(),
                LINUX_EXAMPLES.len(),
                dir.display()
            );
        }
    }
    Ok(ExitCode::from(EXIT_PASS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_has_a_one_sentence_summary() {
        assert!(EXAMPLES.len() >= 5 && LINUX_EXAMPLES.len() >= 4);
        for (name, src, elf) in EXAMPLES.iter().chain(LINUX_EXAMPLES) {
            let s = summary(src);
            assert!(
                !s.is_empty() && !s.contains(".c - ") && s.ends_with('.'),
                "{name}: {s:?}"
            );
            assert_eq!(&elf[..4], b"\x7fELF", "{name}");
        }
        assert_eq!(
            summary("/*\n * x.c - does a thing. More text.\n */"),
            "does a thing."
        );
    }
}
