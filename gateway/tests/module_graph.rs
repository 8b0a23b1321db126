//! The gateway's top-level modules import each other without a cycle.
//!
//! Reads every `gateway/src/**/*.rs`, takes the module each file belongs to
//! (`src/control/login.rs` -> `control`), collects its `crate::<module>`
//! references (paths and `use` statements, including grouped
//! `use crate::{a, b::c}`), and fails naming the cycle if there is one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module of a file under `src/`; `None` for the crate roots.
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first),
    }
}

/// Text without comments, string and char literals (so that docs and
/// messages that mention `crate::x` do not count).
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c[i] == 'r' && (next == Some('"') || next == Some('#')) && (i == 0 || !is_ident(c[i - 1])) {
            // r"..." or r#"..."#
            let mut j = i + 1;
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            j += 1;
            while j < c.len() && !(c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#'))) {
                j += 1;
            }
            i = j + 1 + hashes;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c[i] == '\'' && next == Some('\\') {
            // '\n', '\'', '\u{..}'
            i += 2;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Top-level modules named by `crate::` paths in `code`.
fn referenced(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate") {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| !is_ident(c));
        rest = &rest[at + "crate".len()..];
        let after = rest.trim_start();
        let Some(path) = after.strip_prefix("::") else { continue };
        if !before_ok {
            continue;
        }
        let path = path.trim_start();
        if let Some(group) = path.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            let mut word = String::new();
            for c in group.chars() {
                if is_ident(c) {
                    if item_start && depth == 0 {
                        word.push(c);
                    }
                    continue;
                }
                if !word.is_empty() {
                    found.insert(std::mem::take(&mut word));
                    item_start = false;
                }
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    _ => {}
                }
            }
            if !word.is_empty() {
                found.insert(word);
            }
        } else {
            let name: String = path.chars().take_while(|c| is_ident(*c)).collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// A cycle in `g`, as `a -> b -> ... -> a`, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(g: &Graph, n: &str, marks: &mut BTreeMap<String, Mark>, stack: &mut Vec<String>) -> Option<Vec<String>> {
        marks.insert(n.to_string(), Mark::Open);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match marks.get(m.as_str()).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = stack.iter().position(|s| s == m).expect("open nodes are on the stack");
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(g, m, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(n.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        if marks.get(n.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(g, n, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn gateway_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut g = Graph::new();
    for f in files {
        let Some(module) = module_of(f.strip_prefix(&src).unwrap()) else { continue };
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        let deps = g.entry(module.clone()).or_default();
        deps.extend(referenced(&code).into_iter().filter(|m| *m != module));
    }
    g
}

#[test]
fn the_gateway_modules_have_no_import_cycle() {
    let g = gateway_graph();
    assert!(g.len() >= 20, "every module was read: {:?}", g.keys());
    assert!(g["conn"].contains("control") && g["control"].contains("registry"), "edges were found: {g:?}");
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle between the gateway's modules: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_detector_finds_a_cycle_and_reads_every_form_of_path() {
    let code = code_only(
        "use crate::{a, b::X, c::{d, e}};\nuse crate::f::G;\nfn x() { crate::h::i(); }\n\
         // crate::comment\nlet s = \"crate::string\"; let t = my_crate::z; let q = '\"';\n\
         /* crate::block */ let r = r#\"crate::raw \" crate::raw\"#; use crate::k;",
    );
    let want: BTreeSet<String> = ["a", "b", "c", "f", "h", "k"].map(String::from).into();
    assert_eq!(referenced(&code), want);
    let graph = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let cyclic = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    let cycle = find_cycle(&cyclic).expect("a -> b -> c -> a is a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(module_of(Path::new("control/login.rs")).as_deref(), Some("control"));
    assert_eq!(module_of(Path::new("server.rs")).as_deref(), Some("server"));
    assert_eq!(module_of(Path::new("lib.rs")), None);
}
