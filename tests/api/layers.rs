//! The layering stays true: reads src/ and fails when a bottom layer
//! (domain, config, db, mail) imports a module above it, or when the
//! top-level modules import each other in a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each bottom layer may import (besides itself).
const BOTTOM: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("config", &["domain"]),
    ("db", &["config", "domain"]),
    ("mail", &["config", "domain"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules each top-level module names as `crate::X`
/// (`crate::{X, Y}` too).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top_of = |p: &Path| {
        let rel = p.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let tops: BTreeSet<String> = files
        .iter()
        .map(|p| top_of(p))
        .filter(|t| t != "lib" && t != "main")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let top = top_of(file);
        if !tops.contains(&top) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(group.len())]
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or_default())
                    .collect(),
                None => vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()],
            };
            for name in names {
                if name != top && tops.contains(name) {
                    graph
                        .entry(top.clone())
                        .or_default()
                        .insert(name.to_string());
                }
            }
        }
        graph.entry(top).or_default();
    }
    graph
}

#[test]
fn bottom_layers_import_nothing_above_them() {
    let graph = module_graph();
    let mut wrong = Vec::new();
    for (layer, allowed) in BOTTOM {
        for dep in graph.get(*layer).into_iter().flatten() {
            if !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{layer} -> {dep}"));
            }
        }
    }
    assert!(wrong.is_empty(), "bottom layers import upwards: {wrong:?}");
}

#[test]
fn top_level_modules_import_each_other_in_no_cycle() {
    let graph = module_graph();
    // Kahn: peel off modules that import nothing left; what remains is in
    // (or behind) a cycle.
    let mut left: BTreeMap<String, BTreeSet<String>> = graph.clone();
    loop {
        let free: Vec<String> = left
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !left.contains_key(d)))
            .map(|(m, _)| m.clone())
            .collect();
        if free.is_empty() {
            break;
        }
        for m in free {
            left.remove(&m);
        }
    }
    assert!(left.is_empty(), "modules in an import cycle: {left:?}");
    assert!(graph.len() > 10, "the scan found the modules: {graph:?}");
}
