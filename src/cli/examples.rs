//! `weft examples`: the built-in example guests, listed or written out.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use weft::examples::{EXAMPLES, WEFT_H};

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
            let w = EXAMPLES.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
            for (name, src, elf) in EXAMPLES {
                println!("{name:<w$} {:>6} bytes  {}", elf.len(), summary(src));
            }
            println!("\nwrite them out with: weft examples --out DIR");
        }
        Some(dir) => {
            let inc = dir.join("include");
            std::fs::create_dir_all(&inc)
                .with_context(|| format!("{}: cannot create directory", inc.display()))?;
            std::fs::write(inc.join("weft.h"), WEFT_H)
                .with_context(|| format!("{}: cannot write", inc.join("weft.h").display()))?;
            for (name, src, elf) in EXAMPLES {
                for (path, bytes) in [
                    (dir.join(format!("{name}.elf")), *elf),
                    (dir.join(format!("{name}.c")), src.as_bytes()),
                ] {
                    std::fs::write(&path, bytes)
                        .with_context(|| format!("{}: cannot write", path.display()))?;
                }
            }
            println!(
                "wrote {} examples (NAME.elf, NAME.c) and include/weft.h to {}",
                EXAMPLES.len(),
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
        assert!(EXAMPLES.len() >= 5);
        for (name, src, elf) in EXAMPLES {
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
