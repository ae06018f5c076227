//! Every example graph under `examples/`, and every YAML example in the README and
//! `docs/`, stays valid: the docs show them, so a param renamed or removed must fail here
//! rather than in a reader's hands.

use homeostat_tests::{homeostat, root, stderr};

#[test]
fn every_example_graph_validates() {
    let dir = root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = homeostat(&["validate", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{} is not valid:\n{}",
                path.display(),
                stderr(&out)
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} example graphs found");
}

/// One ```yaml block of a Markdown file, with what the comment above it says of it.
struct Block {
    file: String,
    line: usize,
    body: String,
    /// The `<!-- docs-check: ... -->` line right above the block, if any.
    marker: Option<String>,
}

/// Every ```yaml block of `text`.
fn yaml_blocks(file: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```yaml" {
            let start = i;
            let mut body = String::new();
            i += 1;
            while i < lines.len() && lines[i].trim() != "```" {
                body.push_str(lines[i]);
                body.push('\n');
                i += 1;
            }
            let marker = start
                .checked_sub(1)
                .map(|m| lines[m].trim())
                .and_then(|l| l.strip_prefix("<!-- docs-check:"))
                .and_then(|l| l.strip_suffix("-->"))
                .map(|l| l.trim().to_string());
            blocks.push(Block {
                file: file.to_string(),
                line: start + 1,
                body,
                marker,
            });
        }
        i += 1;
    }
    blocks
}

/// Every Markdown file of the docs: the README and `docs/` (recursively).
fn markdown_files() -> Vec<std::path::PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every YAML example of the README and `docs/` is a graph that validates, as written, so
/// the docs cannot drift from the loader. A comment on the line above a block says
/// otherwise:
///
/// - `<!-- docs-check: fragment KIND -->`: resources of KIND (`  - name: ...` items),
///   checked inside `graph: doc` / `resources:` / `KIND:`;
/// - `<!-- docs-check: params KIND NAME -->`: params of one resource, checked inside a
///   resource of KIND named NAME;
/// - `<!-- docs-check: top-level -->`: top-level keys (`collect:`), checked with `graph:
///   doc` added;
/// - `<!-- docs-check: fails TEXT -->`: an example of an invalid graph, whose error must
///   contain TEXT;
/// - `<!-- docs-check: not a graph: WHY -->`: YAML that is no graph (not checked).
#[test]
fn every_yaml_example_in_the_docs_validates() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path
            .strip_prefix(root())
            .unwrap_or(&path)
            .display()
            .to_string();
        for block in yaml_blocks(&name, &text) {
            let marker = block.marker.as_deref().unwrap_or("");
            let mut expect_error = None;
            let graph = if let Some(kind) = marker.strip_prefix("fragment ") {
                format!("graph: doc\nresources:\n  {kind}:\n{}", block.body)
            } else if let Some(rest) = marker.strip_prefix("params ") {
                let (kind, name) = rest.split_once(' ').expect("params KIND NAME");
                format!(
                    "graph: doc\nresources:\n  {kind}:\n  - name: {name}\n{}",
                    block.body
                )
            } else if marker == "top-level" {
                format!("graph: doc\n{}", block.body)
            } else if let Some(text) = marker.strip_prefix("fails ") {
                expect_error = Some(text.to_string());
                block.body.clone()
            } else if marker.starts_with("not a graph:") {
                continue;
            } else {
                assert!(
                    marker.is_empty(),
                    "{}:{}: unknown docs-check marker {marker:?}",
                    block.file,
                    block.line
                );
                block.body.clone()
            };
            let file = dir.path().join(format!("{checked}.yaml"));
            std::fs::write(&file, &graph).unwrap();
            let out = homeostat(&["validate", file.to_str().unwrap()]);
            let err = stderr(&out);
            checked += 1;
            match (&expect_error, out.status.success()) {
                (None, true) => {}
                (None, false) => failures.push(format!(
                    "{}:{}: the example does not validate:\n{err}",
                    block.file, block.line
                )),
                (Some(want), false) if err.contains(want.as_str()) => {}
                (Some(want), _) => failures.push(format!(
                    "{}:{}: the example should fail with {want:?}; got:\n{err}",
                    block.file, block.line
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 20, "only {checked} YAML examples found");
}

/// A fenced block shown as a command's output, and the command.
struct Shown {
    file: String,
    line: usize,
    command: String,
    /// Relative to the repository's root.
    dir: String,
    lines: Vec<String>,
}

/// Every block marked `<!-- docs-check: output of "COMMAND" in DIR -->`.
fn shown_outputs(file: &str, text: &str) -> Vec<Shown> {
    let lines: Vec<&str> = text.lines().collect();
    let mut shown = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l
            .trim()
            .strip_prefix("<!-- docs-check: output of \"")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        let (command, dir) = rest
            .split_once("\" in ")
            .unwrap_or_else(|| panic!("{file}:{}: expected `output of \"CMD\" in DIR`", i + 1));
        assert!(
            lines.get(i + 1).is_some_and(|f| f.starts_with("```")),
            "{file}:{}: the marker must be right above a fenced block",
            i + 1
        );
        let body: Vec<String> = lines[i + 2..]
            .iter()
            .take_while(|l| !l.starts_with("```"))
            .map(|l| l.to_string())
            .collect();
        shown.push(Shown {
            file: file.to_string(),
            line: i + 2,
            command: command.to_string(),
            dir: dir.trim().to_string(),
            lines: body,
        });
    }
    shown
}

/// `text` with every duration in seconds (`0.31s`) as `#s`: they differ from run to run.
fn mask_durations(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let int_end = i;
        if int_end > start && chars.get(i) == Some(&'.') {
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            if j > i + 1 && chars.get(j) == Some(&'s') {
                out.push_str("#s");
                i = j + 1;
                continue;
            }
        }
        if int_end > start {
            out.extend(&chars[start..int_end]);
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Whether `shown` (a line of the docs, where `...` stands for anything) is in `line`;
/// durations in seconds are not compared.
fn shows(line: &str, shown: &str) -> bool {
    let (line, shown) = (mask_durations(line), mask_durations(shown));
    let mut rest = line.as_str();
    for part in shown.split("...").filter(|p| !p.is_empty()) {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Every output the docs show under a `docs-check: output of` marker is what the command
/// prints: each shown line is found, in order, among the lines it printed (a log line's
/// time stamp may be left out, durations like `0.31s` are not compared, and `...` in a
/// shown line stands for anything).
#[test]
fn every_output_the_docs_show_is_what_homeostat_prints() {
    let bin_dir = homeostat_tests::binary()
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for shown in shown_outputs(&name, &text) {
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", &shown.command])
                .current_dir(root().join(&shown.dir))
                .env("PATH", &path)
                .env("HOMEOSTAT_TMP_PREFIX", "1")
                .env("NO_COLOR", "1")
                .env_remove("RUST_LOG")
                .output()
                .unwrap();
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let mut lines = printed.lines();
            for want in &shown.lines {
                if !lines.any(|l| shows(l, want)) {
                    failures.push(format!(
                        "{}:{}: `{}` (in {}) does not print, in this order, the line\n  {want}\nIt printed:\n{printed}",
                        shown.file, shown.line, shown.command, shown.dir
                    ));
                    break;
                }
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 3, "only {checked} shown outputs found");
}

/// `docs/bundled-plugins.md` is what `plugin inspect bundled:NAME` prints, for every
/// bundled plugin, but for the build's digest, size and memory at start.
#[test]
fn the_bundled_plugins_page_is_what_plugin_inspect_prints() {
    let page = std::fs::read_to_string(root().join("docs/bundled-plugins.md")).unwrap();
    let varying = |text: &str| -> String {
        text.lines()
            .filter(|l| {
                !l.starts_with("sha256:") && !l.starts_with("size:") && !l.starts_with("memory:")
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let mut checked = 0;
    for block in page
        .split("```\n$ homeostat plugin inspect bundled:")
        .skip(1)
    {
        let (name, rest) = block.split_once('\n').unwrap();
        let shown = &rest[..rest.find("```").expect("the block ends")];
        let out = homeostat_tests::command()
            .args(["plugin", "inspect", &format!("bundled:{name}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            varying(shown),
            varying(&printed),
            "docs/bundled-plugins.md: `plugin inspect bundled:{name}` prints something else \
             (regenerate the block from its output)"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} plugins on the page");
}
