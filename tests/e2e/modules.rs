//! No module cycle inside any crate: for every crate, each module's
//! references to its siblings (`crate::x`, `use crate::{x, y}`)
//! form an acyclic graph. The crate root (lib.rs, which declares the
//! modules and holds shared types) and test modules are left out: a module
//! may always use the root, and tests may use anything. Run alone:
//! `cargo test -p sluice-cli --test e2e modules`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::repo_file;

/// Every `.rs` file of a crate's `src`, as (module path, file).
fn modules(src: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for f in crate::all_files(src) {
        if f.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts
            .last()
            .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
        {
            parts.pop();
        }
        out.push((parts.join("::"), f));
    }
    out
}

fn is_test_module(path: &str) -> bool {
    path.split("::")
        .any(|p| p == "tests" || p.ends_with("_tests") || p == "testing")
}

/// The top-level sibling modules `file` (in module `me`) refers to.
fn references(me: &str, text: &str, siblings: &BTreeSet<String>) -> BTreeSet<String> {
    let top = me.split("::").next().unwrap_or(me).to_owned();
    let mut out = BTreeSet::new();
    // Drop test modules inside the file: they may use anything.
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    // Comments name modules without importing them.
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            group
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|n| n.trim().split("::").next().unwrap_or("").trim())
                .collect()
        } else {
            vec![
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or(""),
            ]
        };
        for n in names {
            if siblings.contains(n) && n != top {
                out.insert(n.to_owned());
            }
        }
    }
    out
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(repo_file("crates"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .collect();
    crates.push(repo_file("sandbox/src"));
    let mut checked = 0;
    for src in crates.into_iter().filter(|s| s.is_dir()) {
        let files: Vec<(String, PathBuf)> = modules(&src)
            .into_iter()
            .filter(|(m, _)| !m.is_empty() && !is_test_module(m))
            .collect();
        let siblings: BTreeSet<String> = files
            .iter()
            .map(|(m, _)| m.split("::").next().unwrap().to_owned())
            .collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (m, f) in &files {
            let top = m.split("::").next().unwrap().to_owned();
            let text = std::fs::read_to_string(f).unwrap();
            graph
                .entry(top)
                .or_default()
                .extend(references(m, &text, &siblings));
        }
        checked += graph.len();
        if let Some(c) = cycle(&graph) {
            panic!(
                "{}: modules import each other in a cycle: {}",
                src.display(),
                c.join(" -> ")
            );
        }
    }
    assert!(checked > 40, "only {checked} modules found");
}
