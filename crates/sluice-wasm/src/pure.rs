//! The `map_value` ABI: a guest that provably cannot change its own state
//! runs every unit of a job in one instance, so a unit costs a call, not an
//! instantiation.
//!
//! `map_value(address: i32, count: i32, output: i32) -> f64` gets the
//! address in its memory and the number of the unit's values (row-major
//! f64, little-endian) and returns output number `output`; the host calls
//! it once per output. Before the module may use
//! this ABI, every function reachable from `map_value` by direct calls is
//! checked against an allow-list of instructions that only compute (no
//! store, `memory.grow`/`fill`/`copy`/`init`, `data.drop`, `elem.drop`,
//! `global.set`, table change, call to an import or indirect call passes).
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

/// The operator's name unless it is on the allow-list of instructions
/// that only compute: control flow and direct calls, locals, `global.get`,
/// scalar loads, `memory.size`, constants, scalar and lane arithmetic,
/// and reading references and tables. Everything else is refused, including
/// any instruction a future proposal adds. (The engine also turns GC,
/// exceptions, stack switching and other proposals off.)
fn changes_state(op: &Operator<'_>) -> Option<String> {
    let debug = format!("{op:?}");
    let name = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    let exact = matches!(
        name,
        "Unreachable"
            | "Nop"
            | "Block"
            | "Loop"
            | "If"
            | "Else"
            | "End"
            | "Br"
            | "BrIf"
            | "BrTable"
            | "Return"
            | "Call"
            | "ReturnCall"
            | "Drop"
            | "Select"
            | "TypedSelect"
            | "LocalGet"
            | "LocalSet"
            | "LocalTee"
            | "GlobalGet"
            | "MemorySize"
            | "RefNull"
            | "RefIsNull"
            | "RefFunc"
            | "TableGet"
            | "TableSize"
    );
    // Scalar and lane arithmetic, comparisons, conversions, constants and
    // loads are named after their type; their stores and atomics say so.
    let arithmetic = ["I32", "I64", "F32", "F64"]
        .iter()
        .any(|t| name.starts_with(t))
        && !name.contains("Store")
        && !name.contains("Atomic");
    (!(exact || arithmetic)).then(|| name.to_owned())
}
