//! The service crate's layering, checked on its sources: the HTTP edge sits on top and
//! nothing below it imports it, and the top-level modules import each other without a circle
//! (docs/architecture.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules of the library and the others each one's code names (comments aside).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let module = relative.split(['/', '.']).next().unwrap().to_owned();
        // The binary's parts and this test are not layers of the library.
        if !relative.ends_with(".rs")
            || ["main", "cli", "commands", "lib", "architecture_tests"].contains(&module.as_str())
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let named = graph.entry(module.clone()).or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let rest = &line[at + "crate::".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let target = &rest[..end];
                if !target.is_empty() && target != module {
                    named.insert(target.to_owned());
                }
            }
        }
    }
    graph
}

/// A circle of imports, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn nothing_below_the_http_edge_imports_it() {
    let graph = imports();
    assert!(
        graph.contains_key("http") && graph.contains_key("operations"),
        "{graph:?}"
    );
    let importers: Vec<&String> = graph
        .iter()
        .filter(|(module, named)| *module != "http" && named.contains("http"))
        .map(|(module, _)| module)
        .collect();
    assert!(
        importers.is_empty(),
        "modules below the HTTP edge import it: {importers:?}"
    );
}

#[test]
fn the_modules_import_each_other_without_a_circle() {
    let graph = imports();
    assert_eq!(circle(&graph), None, "the imports go round: {graph:?}");
}

#[test]
fn a_circle_is_found_when_there_is_one() {
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(
        circle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
