//! The `map_value` ABI: a guest that provably cannot change its own state
//! runs every unit of a job in one instance, so a unit costs a call, not an
//! instantiation.
//!
//! `map_value(rows: i32, values: i32, output: i32) -> f64` gets the address
//! and count of the unit's values (row-major f64) and returns output number
//! `output`; the host calls it once per output. Before the module may use
//! this ABI, every function reachable from `map_value` is checked: no store,
//! no `memory.grow`/`fill`/`copy`/`init`, no `data.drop`/`elem.drop`, no
//! `global.set`, no table change, no call to an import, no indirect call.
//! A call then cannot leave anything behind: linear memory, globals and
//! tables are as instantiation left them. The host writes the unit's values
//! into a region it added to the memory at instantiation (its size fixed by
//! the schema's row bound, never by the data), and zeroes them after the
//! call, trap or not. Fuel and the epoch deadline are reset per unit.

use wasmparser::{Operator, Parser, Payload, TypeRef};

/// Why the function exported as `export` could change instance state, or
/// reach beyond pure computation; `Ok` if it cannot.
pub(crate) fn check(bytes: &[u8], export: &str) -> Result<(), String> {
    let mut imported = 0u32;
    let mut bodies = Vec::new();
    let mut entry = None;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if matches!(import.map_err(|e| e.to_string())?.ty, TypeRef::Func(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e.map_err(|e| e.to_string())?;
                    if e.name == export && e.kind == wasmparser::ExternalKind::Func {
                        entry = Some(e.index);
                    }
                }
            }
            Payload::CodeSectionEntry(body) => bodies.push(body),
            _ => {}
        }
    }
    let entry = entry.ok_or_else(|| format!("the module exports no function {export}"))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![entry];
    while let Some(f) = todo.pop() {
        if !seen.insert(f) {
            continue;
        }
        let Some(local) = f.checked_sub(imported) else {
            return Err(format!(
                "{export} reaches a host import (function {f}); it may only compute"
            ));
        };
        let body = bodies
            .get(local as usize)
            .ok_or_else(|| format!("function {f} has no body"))?;
        let mut ops = body.get_operators_reader().map_err(|e| e.to_string())?;
        while !ops.eof() {
            let op = ops.read().map_err(|e| e.to_string())?;
            match op {
                Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                    todo.push(function_index)
                }
                other => {
                    if let Some(name) = changes_state(&other) {
                        return Err(format!(
                            "{export} may not change the instance's state, but function {f} uses {name}"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The operator's name if it can write memory, globals or tables, or call
/// code the check cannot follow. The engine's validation has already
/// refused threads, GC, memory64 and multiple memories.
fn changes_state(op: &Operator<'_>) -> Option<String> {
    let debug = format!("{op:?}");
    let name = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    let writes = name.contains("Store")
        || name.contains("Atomic")
        || (name.starts_with("Memory") && name != "MemorySize")
        || (name.starts_with("Table") && name != "TableGet" && name != "TableSize")
        || matches!(
            name,
            "GlobalSet" | "DataDrop" | "ElemDrop" | "CallIndirect" | "ReturnCallIndirect"
        )
        || name.starts_with("CallRef")
        || name.starts_with("ReturnCallRef");
    writes.then(|| name.to_owned())
}
