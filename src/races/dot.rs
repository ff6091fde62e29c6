//! `weft races --dot`: the reported pairs as a Graphviz graph.

use std::collections::BTreeMap;

use super::{Group, RaceReport, Side};

/// The reported accesses as a Graphviz graph: one node per access (first pair of each
/// group), a solid edge per conflicting pair (red for races), dashed program-order edges
/// between a vCPU's accesses.
pub fn dot(r: &RaceReport, all: bool) -> String {
    use petgraph::dot::{Config, Dot};
    use petgraph::graph::{DiGraph, NodeIndex};

    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut g: DiGraph<String, (String, &'static str)> = DiGraph::new();
    let mut nodes: BTreeMap<(u32, u64, u64), NodeIndex> = BTreeMap::new();
    let mut node = |g: &mut DiGraph<String, (String, &'static str)>, s: &Side| {
        *nodes.entry((s.vcpu, s.step, s.rip)).or_insert_with(|| {
            g.add_node(format!(
                "step {} vcpu{} {} [{:#x}]\\n{}\\n{}",
                s.step,
                s.vcpu,
                s.kind,
                s.addr,
                esc(&s.insn),
                esc(&s.source)
            ))
        })
    };
    let extra: &[Group] = if all { &r.conflicts } else { &[] };
    for grp in r.races.iter().chain(extra) {
        let a = node(&mut g, &grp.first);
        let b = node(&mut g, &grp.second);
        let color = if grp.race { "red" } else { "black" };
        let label = format!(
            "#{} {}{} x{}",
            grp.id,
            grp.class,
            if grp.race { " race" } else { "" },
            grp.count
        );
        g.add_edge(a, b, (label, color));
    }
    let mut last: BTreeMap<u32, NodeIndex> = BTreeMap::new();
    for (&(vcpu, _, _), &n) in &nodes {
        if let Some(prev) = last.insert(vcpu, n) {
            g.add_edge(prev, n, (String::new(), "gray"));
        }
    }
    let edge = |_, e: petgraph::graph::EdgeReference<'_, (String, &'static str)>| {
        let (label, color) = e.weight();
        if label.is_empty() {
            format!("style=dashed color={color}")
        } else {
            format!("label=\"{label}\" color={color} fontcolor={color}")
        }
    };
    let nodef = |_, (_, label): (NodeIndex, &String)| format!("shape=box label=\"{label}\"");
    let d = Dot::with_attr_getters(
        &g,
        &[Config::EdgeNoLabel, Config::NodeNoLabel],
        &edge,
        &nodef,
    );
    format!("{d:?}")
}
