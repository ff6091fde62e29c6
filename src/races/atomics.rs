//! Global variables whose DWARF type says they are atomic: C11 `_Atomic` (DW_TAG_atomic_type),
//! C++ `std::atomic<T>` / `std::atomic_flag`, Rust `core::sync::atomic::Atomic*`, and
//! the atomic members of structures and arrays held in globals.
//!
//! On x86 an acquire load, a release store and (for most compilers) a sequentially
//! consistent load are plain MOVs, so the trace cannot tell them from ordinary accesses;
//! the variable's declared type can. Every byte of such a variable is a synchronisation
//! byte for the race analysis, exactly like a byte some locked instruction touched.
//! Heap objects have no address in the DWARF; their atomics are recognised by the code
//! that accesses them instead (see `sync.rs`).

use std::collections::HashMap;

use gimli::{AttributeValue, EndianSlice, LittleEndian, Operation, UnitOffset};

use crate::debuginfo::sections;

type R<'a> = EndianSlice<'a, LittleEndian>;

/// Types nested deeper than this are not looked into (a recursive type, or a pathological
/// image, stops here).
const MAX_DEPTH: u32 = 12;
/// Array elements whose atomic parts are listed one by one, at most.
const MAX_ELEMENTS: u64 = 4096;

/// `(address, length)` of every atomic part of every global variable of `elf`, at load
/// addresses (`bias` added), sorted. Empty without DWARF or when it does not parse.
pub fn atomic_globals(elf: &[u8], bias: u64) -> Vec<(u64, u64)> {
    let secs = sections(elf);
    let load = |id: gimli::SectionId| -> Result<R<'_>, gimli::Error> {
        let data = secs
            .iter()
            .find(|s| s.name == id.name())
            .map_or(&[][..], |s| s.data);
        Ok(EndianSlice::new(data, LittleEndian))
    };
    let Ok(dwarf) = gimli::Dwarf::load(load) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let mut memo = HashMap::new();
        let mut vars: Vec<(u64, UnitOffset)> = Vec::new();
        let mut cursor = unit.entries();
        while let Ok(Some(e)) = cursor.next_dfs() {
            if e.tag() != gimli::DW_TAG_variable {
                continue;
            }
            let (Some(AttributeValue::Exprloc(expr)), Some(AttributeValue::UnitRef(ty))) = (
                e.attr_value(gimli::DW_AT_location),
                e.attr_value(gimli::DW_AT_type),
            ) else {
                continue;
            };
            let mut ops = expr.operations(unit.encoding());
            let addr = match ops.next() {
                Ok(Some(Operation::Address { address })) => Some(address),
                Ok(Some(Operation::AddressIndex { index })) => dwarf.address(&unit, index).ok(),
                _ => None,
            };
            // Only a plain static address: `DW_OP_addr A` and nothing after it.
            if let (Some(a), Ok(None)) = (addr, ops.next()) {
                vars.push((a, ty));
            }
        }
        for (addr, ty) in vars {
            let (_, parts) = layout(&dwarf, &unit, ty, 0, &mut memo);
            for (off, len) in parts {
                out.push((addr.wrapping_add(off).wrapping_add(bias), len));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether a structure or class of this name is an atomic type of C++ or Rust.
pub fn is_atomic_type_name(name: &str) -> bool {
    let rust = name
        .strip_prefix("Atomic")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase() || c == '<'));
    let cxx = [
        "atomic<",
        "__atomic_base<",
        "__atomic_float<",
        "atomic_flag",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || name == "__atomic_flag_base";
    rust || cxx
}

/// Size and atomic parts `(offset, length)` of the type at `off`.
type Layout = (Option<u64>, Vec<(u64, u64)>);

fn layout(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    off: UnitOffset,
    depth: u32,
    memo: &mut HashMap<UnitOffset, Layout>,
) -> Layout {
    if let Some(l) = memo.get(&off) {
        return l.clone();
    }
    if depth > MAX_DEPTH {
        return (None, Vec::new());
    }
    let Ok(e) = unit.entry(off) else {
        return (None, Vec::new());
    };
    let size = e
        .attr_value(gimli::DW_AT_byte_size)
        .and_then(|v| v.udata_value());
    let inner = |memo: &mut HashMap<UnitOffset, Layout>| match e.attr_value(gimli::DW_AT_type) {
        Some(AttributeValue::UnitRef(t)) => layout(dwarf, unit, t, depth + 1, memo),
        _ => (None, Vec::new()),
    };
    let result = match e.tag() {
        gimli::DW_TAG_atomic_type => {
            let s = size.or(inner(memo).0);
            (s, s.map(|s| vec![(0, s)]).unwrap_or_default())
        }
        gimli::DW_TAG_typedef
        | gimli::DW_TAG_const_type
        | gimli::DW_TAG_volatile_type
        | gimli::DW_TAG_restrict_type => inner(memo),
        gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
            let name = e
                .attr_value(gimli::DW_AT_name)
                .and_then(|v| dwarf.attr_string(unit, v).ok())
                .map(|s| String::from_utf8_lossy(s.slice()).into_owned())
                .unwrap_or_default();
            match size {
                Some(s) if is_atomic_type_name(&name) => (Some(s), vec![(0, s)]),
                _ => (size, members(dwarf, unit, off, depth, memo)),
            }
        }
        gimli::DW_TAG_array_type => {
            let (elem, parts) = inner(memo);
            let count = array_count(unit, off);
            let parts = match (elem, count) {
                (Some(es), Some(n)) if !parts.is_empty() && es > 0 => (0..n.min(MAX_ELEMENTS))
                    .flat_map(|i| parts.iter().map(move |&(o, l)| (i * es + o, l)))
                    .collect(),
                _ => Vec::new(),
            };
            (size.or(elem.zip(count).map(|(e, n)| e * n)), parts)
        }
        _ => (size, Vec::new()),
    };
    memo.insert(off, result.clone());
    result
}

/// The atomic parts of the members of the structure at `off`.
fn members(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    off: UnitOffset,
    depth: u32,
    memo: &mut HashMap<UnitOffset, Layout>,
) -> Vec<(u64, u64)> {
    let mut fields = Vec::new();
    if let Ok(mut tree) = unit.entries_tree(Some(off)) {
        if let Ok(root) = tree.root() {
            let mut children = root.children();
            while let Ok(Some(child)) = children.next() {
                let m = child.entry();
                if m.tag() != gimli::DW_TAG_member && m.tag() != gimli::DW_TAG_inheritance {
                    continue;
                }
                let at = m
                    .attr_value(gimli::DW_AT_data_member_location)
                    .and_then(|v| v.udata_value())
                    .unwrap_or(0);
                if let Some(AttributeValue::UnitRef(t)) = m.attr_value(gimli::DW_AT_type) {
                    fields.push((at, t));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (at, t) in fields {
        let (_, parts) = layout(dwarf, unit, t, depth + 1, memo);
        out.extend(parts.into_iter().map(|(o, l)| (at + o, l)));
    }
    out
}

/// The element count of the (first dimension of the) array type at `off`.
fn array_count(unit: &gimli::Unit<R<'_>>, off: UnitOffset) -> Option<u64> {
    let mut tree = unit.entries_tree(Some(off)).ok()?;
    let root = tree.root().ok()?;
    let mut children = root.children();
    let mut total: Option<u64> = None;
    while let Ok(Some(child)) = children.next() {
        let s = child.entry();
        if s.tag() != gimli::DW_TAG_subrange_type {
            continue;
        }
        let n = s
            .attr_value(gimli::DW_AT_count)
            .and_then(|v| v.udata_value())
            .or_else(|| {
                s.attr_value(gimli::DW_AT_upper_bound)
                    .and_then(|v| v.udata_value())
                    .map(|u| u + 1)
            })?;
        total = Some(total.unwrap_or(1).saturating_mul(n));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_type_names_of_cxx_and_rust() {
        for yes in [
            "AtomicBool",
            "AtomicUsize",
            "AtomicPtr<u8>",
            "Atomic<u32>",
            "atomic<bool>",
            "__atomic_base<int>",
            "atomic_flag",
        ] {
            assert!(is_atomic_type_name(yes), "{yes}");
        }
        for no in [
            "Atomics",
            "atomically",
            "Mutex<i32>",
            "",
            "Atomic",
            "vector<int>",
        ] {
            assert!(!is_atomic_type_name(no), "{no}");
        }
    }

    #[test]
    fn garbage_has_no_atomic_globals() {
        assert!(atomic_globals(b"", 0).is_empty());
        assert!(atomic_globals(&[0u8; 64], 0).is_empty());
    }
}
