//! `homeostat plugin inspect FILE.wasm` (what a plugin is and asks for, without running
//! it), `homeostat plugin new NAME` (a plugin crate that builds with one command),
//! `homeostat plugin lock GRAPH` (pin the builds a graph uses) and `homeostat plugin test
//! FILE.wasm GRAPH` (check, apply, check again in a temporary root: the plugin test kit).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::plugin::grants::{self, Policy};
use crate::plugin::inspect::{self, Report};
use crate::plugin::registry;
use crate::sys::{input, text as esc};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's name, version, API, kinds, imports, requested capabilities, params
    /// schemas and SHA-256 (and the grants line that trusts this exact build).
    Inspect(InspectArgs),
    /// Create a plugin crate for a new resource kind, ready to build with
    /// `cargo build --release --target wasm32-wasip2`.
    New(NewArgs),
    /// Pin the third-party plugins a graph uses by SHA-256 in GRAPH.lock beside it: another
    /// build is then refused before anything runs.
    Lock(LockArgs),
    /// Test a plugin build: run a graph using it in a fresh temporary root (`$ROOT` in the
    /// graph) with the real runtime and sandbox, as check, apply and check again. Fails
    /// when the apply fails or the second check finds anything to change.
    Test(TestArgs),
    /// Embed a manifest in a component built by another toolchain (componentize-py, jco,
    /// ...), checked against the component's imports: the step the Rust SDK's
    /// `export_resource!` does. Pack last: stripping tools drop custom sections.
    Pack(PackArgs),
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The component (`.wasm`), without a manifest.
    input: PathBuf,
    /// The manifest (TOML; its format is in docs/plugin-guide.md#the-manifest).
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// Where to write the packed component (not the input).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin build to test (a `.wasm` file). It is granted what it declares.
    plugin: PathBuf,
    /// A graph using its kinds; every `$ROOT` in it becomes a fresh temporary directory, so
    /// the test touches nothing else.
    graph: PathBuf,
    /// Keep the temporary directory (its path is printed) to look at what the run left.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The graph file (YAML); the lock file is written beside it as GRAPH.lock.
    graph: PathBuf,
    #[command(flatten)]
    input: super::input::GraphFileArgs,
    #[command(flatten)]
    plugins: super::load::PluginArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A `.wasm` file, or `bundled:NAME` for a plugin inside this binary
    /// (`bundled:file`, ...).
    file: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print only the grants-file line that trusts this exact build with everything it
    /// declares (append it under `[plugins]`).
    #[arg(long, conflicts_with = "json")]
    grant_line: bool,
    /// Also say what this grants file allows the plugin.
    #[arg(long, value_name = "FILE")]
    grants: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: its crate name and its resource kind (lower case, digits, `-`).
    name: String,
    /// Where to create the crate (default: ./NAME). Must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// The homeostat-sdk crate to depend on (default: `plugins/sdk` of the source tree
    /// this homeostat was built from).
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
    /// Scaffold a kind that edits part of a file (one `key=value` setting), which other
    /// editing resources may share, rather than one that owns a whole file.
    #[arg(long)]
    edits: bool,
}

pub fn plugin(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Inspect(args) => inspect_cmd(args),
        PluginCommand::New(args) => new(args),
        PluginCommand::Lock(args) => lock(args),
        PluginCommand::Test(args) => test_cmd(args),
        PluginCommand::Pack(args) => pack(args),
    }
}

/// `plugin pack`: the manifest, checked as the loader would check it (TOML format, API
/// version, kinds, their schemas), appended as the `homeostat:manifest` custom section at
/// the component's top level, where the loader finds it as it finds the SDK's. The
/// component's imports are compared with the declared capabilities, as `inspect` does.
fn pack(args: PackArgs) -> anyhow::Result<ExitCode> {
    use crate::plugin::manifest::{self, ManifestError};
    if args.output == args.input {
        bail!("write the packed component to another file than its input");
    }
    let wasm = input::read_file(&args.input, &registry::PLUGIN_CAP)?;
    match manifest::read(&wasm) {
        Err(ManifestError::Missing) => {}
        Ok(_) => bail!(
            "{} already has a `{}` section; pack a build without one",
            args.input.display(),
            manifest::SECTION
        ),
        Err(e) => bail!("{} {e}", args.input.display()),
    }
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("cannot read {}", args.manifest.display()))?;
    let m = manifest::parse(&text)
        .map_err(|e| anyhow::anyhow!("the manifest {} {e}", args.manifest.display()))?;
    for (kind, k) in &m.kinds {
        let json: serde_json::Value = serde_json::from_str(&k.schema).map_err(|e| {
            anyhow::anyhow!(
                "the manifest {}: the schema of kind `{kind}` is not JSON: {e}",
                args.manifest.display()
            )
        })?;
        jsonschema::validator_for(&json).map_err(|e| {
            anyhow::anyhow!(
                "the manifest {}: the schema of kind `{kind}` does not compile: {e}",
                args.manifest.display()
            )
        })?;
    }
    let (imports, exports) = inspect::interfaces(&wasm)?;
    if !exports
        .iter()
        .any(|e| e.starts_with("homeostat:resource/plugin@"))
    {
        bail!(
            "{} does not export `homeostat:resource/plugin`: it is not a resource plugin \
             (build it against the `resource-plugin` world of wit/v0.1)",
            args.input.display()
        );
    }
    let mut packed = wasm.clone();
    wasm_encoder::ComponentSection::append_to_component(
        &wasm_encoder::CustomSection {
            name: manifest::SECTION.into(),
            data: text.as_bytes().into(),
        },
        &mut packed,
    );
    // What the loader will read back.
    let report = inspect::inspect(&packed)
        .map_err(|e| anyhow::anyhow!("the packed component {e} (a bug: please report it)"))?;
    crate::sys::fs::cache_file::write_whole(&args.output, ".homeostat-pack", &packed, || {})
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    for w in inspect::disagreements(&imports, &m.capabilities) {
        eprintln!("warning: {w}");
    }
    println!(
        "packed {} {} (kinds: {}) into {}: {} bytes, SHA-256 {}",
        m.name,
        m.version,
        m.kinds.keys().cloned().collect::<Vec<_>>().join(", "),
        args.output.display(),
        packed.len(),
        report.sha256
    );
    Ok(ExitCode::SUCCESS)
}

/// One `homeostat run` of `plugin test`: its exit code, report and log.
struct Step {
    code: Option<i32>,
    report: serde_json::Value,
    log: String,
}

impl Step {
    /// `(id, outcome, what, error)` of each resource in the report.
    fn resources(&self) -> Vec<(String, String, Vec<String>, Option<String>)> {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        self.report["resources"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                (
                    s(&r["id"]),
                    s(&r["outcome"]),
                    r["what"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(s)
                        .collect(),
                    r["error"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    /// Resources with `outcome`.
    fn with(&self, outcome: &str) -> Vec<(String, Vec<String>, Option<String>)> {
        self.resources()
            .into_iter()
            .filter(|(_, o, _, _)| o == outcome)
            .map(|(id, _, what, err)| (id, what, err))
            .collect()
    }
}

/// `plugin test`: the plugin test kit (Terraform's plugin tests are the model: apply, then
/// an empty plan). Each step is a real `homeostat run` of this binary, with the plugin in a
/// plugin directory of its own, granted what it declares, reading its run report.
fn test_cmd(args: TestArgs) -> anyhow::Result<ExitCode> {
    let wasm = input::read_file(&args.plugin, &registry::PLUGIN_CAP)?;
    let report = inspect::inspect(&wasm)
        .map_err(|e| anyhow::anyhow!("plugin {} {e}", args.plugin.display()))?;
    let graph_text = crate::plan::read(&args.graph, crate::plan::DEFAULT_MAX_GRAPH_MIB << 20)?;
    let work = tempfile::Builder::new()
        .prefix("homeostat-plugin-test.")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let dir = work.path();
    let root = dir.join("root");
    let plugins = dir.join("plugins");
    for d in [&root, &plugins] {
        std::fs::create_dir(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let file_name = args
        .plugin
        .file_name()
        .context("the plugin path names no file")?;
    std::fs::write(plugins.join(file_name), &wasm).context("cannot copy the plugin")?;
    let grant = Policy::empty()
        .access(
            &report.manifest,
            &report.sha256,
            &args.plugin.display().to_string(),
        )
        .full_grant_line();
    let grants = dir.join("grants.toml");
    std::fs::write(&grants, format!("[plugins]\n{grant}\n")).context("cannot write grants")?;
    let graph = dir.join("graph.yaml");
    std::fs::write(
        &graph,
        graph_text.replace("$ROOT", &root.display().to_string()),
    )
    .context("cannot write the graph")?;
    println!(
        "plugin test: {} {} ({}) with {}; $ROOT is {}",
        report.manifest.name,
        report.manifest.version,
        args.plugin.display(),
        args.graph.display(),
        root.display()
    );
    let me = std::env::current_exe().context("cannot find this homeostat")?;
    let step = |name: &str, noop: bool| -> anyhow::Result<Step> {
        let path = dir.join(format!("{name}.json"));
        let mut c = std::process::Command::new(&me);
        c.arg("run")
            .arg(&graph)
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("--grants")
            .arg(&grants)
            .args(["--converged-timeout", "0", "--color", "never", "--report"])
            .arg(&path);
        if noop {
            c.arg("--noop");
        }
        let out = c.output().context("cannot run homeostat")?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        Ok(Step {
            code: out.status.code(),
            report,
            log,
        })
    };
    let failed = |why: String, log: &str| -> anyhow::Result<ExitCode> {
        println!("FAILED: {why}\n\nits log:\n{}", log.trim_end());
        if args.keep {
            println!("kept {}", work.path().display());
        }
        Ok(ExitCode::from(1))
    };
    let list = |items: &[(String, Vec<String>, Option<String>)]| -> String {
        items
            .iter()
            .map(|(id, what, err)| match err {
                Some(e) => format!("\n  {id}: {e}"),
                None => format!("\n  {id}: {}", what.join("; ")),
            })
            .collect()
    };

    let first = step("check", true)?;
    if first.report.is_null() || first.code == Some(1) {
        return failed("the graph does not run (step 1, check)".into(), &first.log);
    }
    let pending = first.with("would_change");
    println!(
        "  1. check:       {} of {} would change",
        pending.len(),
        first.resources().len()
    );

    let apply = step("apply", false)?;
    let bad: Vec<_> = ["failed", "blocked", "unfinished"]
        .iter()
        .flat_map(|o| apply.with(o))
        .collect();
    if !bad.is_empty() || apply.code != Some(0) {
        return failed(
            format!("the apply did not converge (step 2):{}", list(&bad)),
            &apply.log,
        );
    }
    let changed = apply.with("changed");
    println!("  2. apply:       {} changed, none failed", changed.len());

    let again = step("check-again", true)?;
    let still = again.with("would_change");
    if !still.is_empty() || again.code != Some(0) {
        return failed(
            format!(
                "not idempotent: after the apply, the second check still finds changes \
                 (step 3):{}",
                list(&still)
            ),
            &again.log,
        );
    }
    println!("  3. check again: nothing to change");
    if changed.len() < pending.len() {
        return failed(
            format!(
                "{} resources would change in step 1 but did not in step 2",
                pending.len() - changed.len()
            ),
            &apply.log,
        );
    }
    println!("ok: converges in one apply, and the second check is clean");
    if args.keep {
        println!("kept {}", work.keep().display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `plugin lock`: pin what the graph uses now (after the operator checked it).
fn lock(args: LockArgs) -> anyhow::Result<ExitCode> {
    let (_runtime, registry) = args.plugins.load(&crate::sys::Services::default())?;
    let (_, doc) = crate::plan::parse(&args.graph, args.input.max_bytes())?;
    let (path, pinned) = crate::plan::pins::write(&doc, &registry)
        .with_context(|| format!("cannot write the lock file of {}", args.graph.display()))?;
    println!(
        "{}: pinned {pinned} third-party plugin kind(s) the graph uses (bundled kinds are \
         pinned by this binary)",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn inspect_cmd(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let (wasm, bundled) = match args.file.strip_prefix("bundled:") {
        Some(name) => match registry::bundled(name) {
            Some(w) => (w.to_vec(), true),
            None => bail!(
                "no bundled plugin `{name}` (bundled: {})",
                registry::bundled_names().join(", ")
            ),
        },
        None => (
            input::read_file(Path::new(&args.file), &registry::PLUGIN_CAP)?,
            false,
        ),
    };
    let report =
        inspect::inspect(&wasm).map_err(|e| anyhow::anyhow!("plugin {} {e}", args.file))?;
    let policy = match &args.grants {
        Some(p) => Some(Policy::load(p)?),
        None => None,
    };
    let full = Policy::empty().access(&report.manifest, &report.sha256, &args.file);
    let grant_line = full.full_grant_line();
    let granted: Option<BTreeSet<grants::Capability>> = if bundled {
        Some(full.missing())
    } else {
        policy.as_ref().map(|p| {
            p.access(&report.manifest, &report.sha256, &args.file)
                .effective()
                .clone()
        })
    };
    if args.grant_line {
        println!("{grant_line}");
    } else if args.json {
        println!("{}", json(&report, bundled, &grant_line, granted.as_ref()));
    } else {
        print!("{}", text(&report, bundled, &grant_line, granted.as_ref()));
    }
    Ok(ExitCode::SUCCESS)
}

fn names(caps: &BTreeSet<grants::Capability>) -> Vec<&'static str> {
    caps.iter().map(|c| c.name()).collect()
}

/// `--plugin-pool`'s default, for the pool `inspect` shows.
pub(super) const DEFAULT_POOL: usize = 64;

fn json(
    r: &Report,
    bundled: bool,
    grant_line: &str,
    granted: Option<&BTreeSet<grants::Capability>>,
) -> String {
    let kinds: serde_json::Map<String, serde_json::Value> = r
        .manifest
        .kinds
        .iter()
        .map(|(k, m)| {
            let schema: serde_json::Value =
                serde_json::from_str(&m.schema).unwrap_or(serde_json::Value::Null);
            (
                k.clone(),
                serde_json::json!({
                    "schema": schema,
                    "sends": m.sends,
                    "collect_dir": m.collect_dir,
                }),
            )
        })
        .collect();
    let mut v = serde_json::json!({
        "name": r.manifest.name,
        "version": r.manifest.version,
        "api": format!("homeostat:resource@{}", r.manifest.api),
        "sha256": r.sha256,
        "size": r.size,
        "bundled": bundled,
        "capabilities": r.manifest.capabilities,
        "kinds": kinds,
        "imports": r.imports,
        "exports": r.exports,
        "warnings": r.warnings,
        "grant_line": if bundled { serde_json::Value::Null } else { grant_line.into() },
        "core_instances": r.shape.core_instances,
        "memory_at_start": r.shape.memory_bytes,
        "pool": r.shape.pool_size(DEFAULT_POOL, None),
    });
    if let Some(g) = granted {
        // For a bundled plugin `granted` holds what is *missing* (always empty).
        v["granted"] = if bundled {
            serde_json::json!(r.manifest.capabilities)
        } else {
            serde_json::json!(names(g))
        };
    }
    serde_json::to_string_pretty(&v).expect("JSON values serialize")
}

fn text(
    r: &Report,
    bundled: bool,
    grant_line: &str,
    granted: Option<&BTreeSet<grants::Capability>>,
) -> String {
    // Everything but the layout comes from the plugin file: each piece is escaped, so a
    // name cannot add a line of its own or send escape sequences to the terminal.
    let e = |t: &str| esc::escape(t).into_owned();
    let m = &r.manifest;
    let mut s = String::new();
    let caps = if m.capabilities.is_empty() {
        "none (log and state only)".to_string()
    } else {
        e(&m.capabilities.join(", "))
    };
    let _ = writeln!(s, "name:         {}", e(&m.name));
    let _ = writeln!(s, "version:      {}", e(&m.version));
    let _ = writeln!(s, "api:          homeostat:resource@{}", e(&m.api));
    let _ = writeln!(s, "sha256:       {}", r.sha256);
    let _ = writeln!(s, "size:         {} bytes", r.size);
    let _ = writeln!(s, "capabilities: {caps}");
    let _ = writeln!(
        s,
        "instances:    {} core instances per plugin instance",
        r.shape.core_instances
    );
    let _ = writeln!(
        s,
        "memory:       {:.1} MiB of linear memory at start, per instance",
        r.shape.memory_bytes as f64 / f64::from(1 << 20)
    );
    let _ = writeln!(
        s,
        "pool:         up to {} instances (sized by that memory; a grant's `pool = N` sets it)",
        r.shape.pool_size(DEFAULT_POOL, None)
    );
    if bundled {
        let _ = writeln!(s, "grants:       bundled: trusted with what it declares");
    } else {
        if let Some(g) = granted {
            let list = names(g);
            let _ = writeln!(
                s,
                "granted:      {}",
                if list.is_empty() {
                    "nothing".to_string()
                } else {
                    list.join(", ")
                }
            );
        }
        let _ = writeln!(s, "grant line:   {grant_line}");
    }
    let _ = writeln!(s, "kinds:");
    for (kind, k) in &m.kinds {
        let kind = e(kind);
        let sends: Vec<String> = k
            .sends
            .iter()
            .map(|(key, ty)| format!("{}: {}", e(key), ty.name()))
            .collect();
        let mut about = Vec::new();
        if !sends.is_empty() {
            about.push(format!("sends {}", sends.join(", ")));
        }
        if let Some(param) = &k.collect_dir {
            about.push(format!(
                "collected into the pattern's directory: `{}`",
                e(param)
            ));
        }
        if let Some(r) = &k.removes_when {
            about.push(format!(
                "removes what it manages when `{}` is `{}`",
                e(&r.param),
                e(&r.value)
            ));
        }
        if k.edits {
            about.push("edits part of its files, which other editing resources may share".into());
        }
        if !k.content_params.is_empty() {
            let params: Vec<String> = k.content_params.iter().map(|p| e(p)).collect();
            about.push(format!(
                "owns a file's content when one of `{}` is set",
                params.join("`, `")
            ));
        }
        if k.groups {
            about.push(
                "resources ready together are applied in one call, as mgmt's `autogroup`".into(),
            );
        }
        if let Some(param) = &k.name_param {
            about.push(format!(
                "`homeostat resource {kind} NAME` sets `{}` to NAME",
                e(param)
            ));
        }
        if about.is_empty() {
            let _ = writeln!(s, "  {kind}");
        } else {
            let _ = writeln!(s, "  {kind} ({})", about.join("; "));
        }
    }
    let _ = writeln!(s, "imports:");
    for i in &r.imports {
        if i.provided {
            let _ = writeln!(s, "  {}", e(&i.name));
        } else {
            let _ = writeln!(s, "  {}  (NOT provided by this homeostat)", e(&i.name));
        }
    }
    let _ = writeln!(s, "exports:");
    for x in &r.exports {
        let _ = writeln!(s, "  {}", e(x));
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning:      {}", e(w));
    }
    for (kind, k) in &m.kinds {
        let pretty = serde_json::from_str::<serde_json::Value>(&k.schema)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| k.schema.clone());
        let _ = writeln!(s, "params schema of `{}`:", e(kind));
        for line in pretty.lines() {
            let _ = writeln!(s, "  {}", e(line));
        }
    }
    s
}

/// `plugin new`: write the crate.
fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.as_str();
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        bail!(
            "`{name}` is not a usable plugin name: use lower-case letters, digits and `-`, \
             starting with a letter (it is the crate name and the resource kind)"
        );
    }
    if let Some(owner) = crate::plugin::registry::bundled_kind_owner(name) {
        bail!(
            "kind `{name}` is already provided by the bundled plugin `{owner}`, and a graph \
             can have only one plugin per kind: a third-party plugin of that name would be \
             refused when loaded. Choose another name (e.g. `my-{name}`)"
        );
    }
    let dir = args.path.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; choose another --path",
            dir.display()
        );
    }
    let sdk = match args.sdk {
        Some(p) => p,
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
            if !built_from.join("Cargo.toml").is_file() {
                bail!(
                    "cannot find homeostat-sdk at {} (this homeostat was built elsewhere); pass \
                     --sdk DIR, the `plugins/sdk` directory of a homeostat checkout",
                    built_from.display()
                );
            }
            built_from
        }
    };
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("cannot find homeostat-sdk at {}", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!("{} is not a crate directory (no Cargo.toml)", sdk.display());
    }
    for (file, content) in template(name, &sdk, args.edits) {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let wasm = name.replace('-', "_");
    println!(
        "created plugin `{name}` in {dir}\n\nBuild it:\n  cd {dir} && cargo build --release --target wasm32-wasip2\n\
         Then see {dir}/README.md to grant and run it (the component is \
         target/wasm32-wasip2/release/{wasm}.wasm).",
        dir = dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `my-thing` → `MyThing`.
fn camel(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The files of a new plugin crate: (relative path, content).
fn template(name: &str, sdk: &Path, edits: bool) -> Vec<(String, String)> {
    let ty = camel(name);
    let wasm = name.replace('-', "_");
    let sdk = sdk
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let sub = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{type}}", &ty)
            .replace("{{wasm}}", &wasm)
            .replace("{{sdk}}", &sdk)
    };
    vec![
        ("Cargo.toml".into(), sub(TEMPLATE_CARGO)),
        (
            "src/lib.rs".into(),
            sub(if edits {
                TEMPLATE_EDIT_LIB
            } else {
                TEMPLATE_LIB
            }),
        ),
        (
            format!("schema/{name}.json"),
            sub(if edits {
                TEMPLATE_EDIT_SCHEMA
            } else {
                TEMPLATE_SCHEMA
            }),
        ),
        ("README.md".into(), sub(TEMPLATE_README)),
        ("tests/kit.rs".into(), sub(TEMPLATE_KIT)),
        (
            "tests/kit.yaml".into(),
            sub(if edits {
                TEMPLATE_EDIT_KIT_GRAPH
            } else {
                TEMPLATE_KIT_GRAPH
            }),
        ),
        (
            "example.yaml".into(),
            sub(if edits {
                TEMPLATE_EDIT_GRAPH
            } else {
                TEMPLATE_GRAPH
            }),
        ),
        (".gitignore".into(), "/target\n/plugins\n".into()),
    ]
}

const TEMPLATE_CARGO: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
description = "The `{{name}}` resource kind for homeostat."

[lib]
crate-type = ["cdylib"]

[dependencies]
homeostat-sdk = { path = "{{sdk}}" }
serde = { version = "1", features = ["derive"] }

# Small, self-contained components.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A workspace of its own: builds the same wherever the directory lives.
[workspace]
"#;

const TEMPLATE_LIB: &str = r#"//! The `{{name}}` resource kind: the file at `path` holds exactly `text` and a newline.
//!
//! Replace the params, `validate` and `check_apply` with your own resource. Keep the
//! logic that does not touch the system in plain functions (like [`content`]) so that
//! `cargo test --target x86_64-unknown-linux-gnu` tests it natively.

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs, text};

/// The params of a `{{name}}` resource (see `schema/{{name}}.json`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Absolute path of the managed file.
    pub path: String,
    /// What the file must say.
    pub text: String,
}

/// The content the file must have.
pub fn content(p: &Params) -> String {
    format!("{}\n", p.text)
}

/// The `{{name}}` kind.
pub struct {{type}};

impl Resource for {{type}} {
    const KIND: &'static str = "{{name}}";
    const SCHEMA: &'static str = include_str!("../schema/{{name}}.json");
    type Params = Params;

    /// Check what the schema cannot, and declare the footprint (the only paths `fs` calls
    /// may touch) and what to watch. No host calls here.
    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        if !p.path.starts_with('/') {
            return Err(Error::param(
                "path",
                format!("`{}` is not an absolute path", p.path),
            ));
        }
        Ok(Info::new().write_path(&p.path).watch_path(&p.path))
    }

    /// Compare, and repair only when `ctx.apply` (otherwise it is a `--noop` run).
    fn check_apply(_: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let want = content(p);
        let mut out = Outcome::new();
        // An absent file is a state to repair, not an error: `read_opt` says `None`.
        let current = fs::read_opt(&p.path)?;
        if current.as_deref() != Some(want.as_bytes()) {
            out.change(match current {
                None => format!("create {}", p.path),
                Some(old) => format!(
                    "{}: {}",
                    p.path,
                    text::short_diff(&String::from_utf8_lossy(&old), &want)
                ),
            });
            if ctx.apply {
                fs::write(&p.path, want.as_bytes(), fs::Attrs::new().mode(0o644))?;
            }
        }
        Ok(out)
    }
}

homeostat_sdk::export_resource!({{type}}; capabilities = ["fs"]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ends_with_one_newline() {
        let p = Params {
            path: "/tmp/x".into(),
            text: "hello".into(),
        };
        assert_eq!(content(&p), "hello\n");
    }
}
"#;

const TEMPLATE_EDIT_LIB: &str = r##"//! The `{{name}}` resource kind: one `key=value` setting in a file, every other line
//! left alone. Several `{{name}}` resources (and other editing kinds, such as the
//! bundled `line` and `ini`) may edit one file: `EDITS` tells the host, which runs their
//! check-applies one at a time, each seeing the edits before it, and writes the file
//! once for all of them.
//!
//! Replace the params and the edit with your own. Keep the logic that does not touch
//! the system in plain functions (like [`edit`]) so that
//! `cargo test --target x86_64-unknown-linux-gnu` tests it natively.

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs, text};

/// The params of a `{{name}}` resource (see `schema/{{name}}.json`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Absolute path of the file.
    pub path: String,
    /// The setting's name.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// `text` with the line `key=value` in place of the setting's line (added at the end
/// when there is none), or `None` when it is already right.
pub fn edit(text: &str, p: &Params) -> Option<String> {
    let want = format!("{}={}", p.key, p.value);
    let is_key = |l: &str| l.split_once('=').is_some_and(|(k, _)| k.trim() == p.key);
    let mut lines: Vec<&str> = text.lines().collect();
    match lines.iter().position(|l| is_key(l)) {
        Some(i) if lines[i] == want => return None,
        Some(i) => lines[i] = &want,
        None => lines.push(&want),
    }
    Some(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// The `{{name}}` kind.
pub struct {{type}};

impl Resource for {{type}} {
    const KIND: &'static str = "{{name}}";
    const SCHEMA: &'static str = include_str!("../schema/{{name}}.json");
    /// This kind edits part of its file: others may edit the rest.
    const EDITS: bool = true;
    type Params = Params;

    /// Check what the schema cannot, and declare the file (the only path `fs` calls may
    /// touch), that a change to it wakes the resource, and that it runs after whoever
    /// manages the file or its directory. No host calls here.
    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        if !p.path.starts_with('/') {
            return Err(Error::param(
                "path",
                format!("`{}` is not an absolute path", p.path),
            ));
        }
        if p.key.contains(['=', '\n']) || p.key.trim() != p.key || p.key.is_empty() {
            return Err(Error::param(
                "key",
                "a key is not empty, has no `=`, newline or spaces around it",
            ));
        }
        Ok(Info::new()
            .write_path(&p.path)
            .watch_path(&p.path)
            .depends_on_path(&p.path))
    }

    /// Compare, and repair only when `ctx.apply` (otherwise it is a `--noop` run). The
    /// file read includes the edits of the resources that ran before this one.
    fn check_apply(_: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let mut out = Outcome::new();
        let old = fs::read_opt(&p.path)?.unwrap_or_default();
        let old = String::from_utf8(old)
            .map_err(|_| Error::new(format!("{} is not UTF-8 text", p.path)))?;
        if let Some(new) = edit(&old, p) {
            out.change(format!("{}: {}", p.key, text::short_diff(&old, &new)));
            if ctx.apply {
                fs::write(&p.path, new.as_bytes(), fs::Attrs::new())?;
            }
        }
        Ok(out)
    }
}

homeostat_sdk::export_resource!({{type}}; capabilities = ["fs"]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_one_key_and_keeps_the_rest() {
        let p = Params {
            path: "/tmp/x".into(),
            key: "port".into(),
            value: "80".into(),
        };
        assert_eq!(
            edit("# c\nport = 1\nx=2\n", &p).as_deref(),
            Some("# c\nport=80\nx=2\n")
        );
        assert_eq!(edit("a=1\n", &p).as_deref(), Some("a=1\nport=80\n"));
        assert_eq!(edit("port=80\n", &p), None);
    }
}
"##;

const TEMPLATE_EDIT_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "{{name}}",
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "Absolute path of the file."},
    "key": {"type": "string", "description": "The setting's name."},
    "value": {"type": "string", "description": "Its value: the file gets the line `key=value`."}
  },
  "required": ["path", "key", "value"],
  "additionalProperties": false
}
"#;

const TEMPLATE_EDIT_GRAPH: &str = r#"graph: {{name}}-example
resources:
  {{name}}:
  - name: port
    path: /tmp/{{name}}-example.conf
    key: port
    value: "8080"
  - name: host
    path: /tmp/{{name}}-example.conf
    key: host
    value: example.org
"#;

const TEMPLATE_KIT: &str = r#"//! The plugin through the real homeostat runtime and sandbox: `tests/kit.yaml` in a fresh
//! temporary root (`$ROOT`), checked, applied and checked again; the second check must
//! find nothing to change. Needs `homeostat` on `PATH` (or in `HOMEOSTAT`).

#[test]
fn converges_in_one_apply_and_stays_converged() {
    if let Err(e) = homeostat_sdk::testkit::check(env!("CARGO_MANIFEST_DIR"), "tests/kit.yaml") {
        panic!("{e}");
    }
}
"#;

const TEMPLATE_KIT_GRAPH: &str = r#"# The test kit's graph: `$ROOT` is a fresh temporary directory.
graph: {{name}}-kit
resources:
  {{name}}:
  - name: hello
    path: $ROOT/hello.txt
    text: hello from the test kit
"#;

const TEMPLATE_EDIT_KIT_GRAPH: &str = r#"# The test kit's graph: `$ROOT` is a fresh temporary directory.
graph: {{name}}-kit
resources:
  {{name}}:
  - name: port
    path: $ROOT/app.conf
    key: port
    value: "8080"
  - name: host
    path: $ROOT/app.conf
    key: host
    value: example.org
"#;

const TEMPLATE_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "{{name}}",
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "Absolute path of the managed file."},
    "text": {"type": "string", "description": "What the file must say (a newline is added)."}
  },
  "required": ["path", "text"],
  "additionalProperties": false
}
"#;

const TEMPLATE_GRAPH: &str = r#"graph: {{name}}-example
resources:
  {{name}}:
  - name: hello
    path: /tmp/{{name}}-example.txt
    text: hello from the {{name}} plugin
"#;

const TEMPLATE_README: &str = r#"# {{name}}

A [homeostat](https://github.com/homeostat/homeostat) resource plugin providing the
`{{name}}` kind.

## Build

```sh
rustup target add wasm32-wasip2        # once
cargo build --release --target wasm32-wasip2
mkdir -p plugins && cp target/wasm32-wasip2/release/{{wasm}}.wasm plugins/
```

## Grant and run

A third-party plugin may use nothing until it is granted by name and SHA-256.
`homeostat plugin inspect` prints the line to put in the grants file:

```sh
homeostat plugin inspect plugins/{{wasm}}.wasm
{ echo '[plugins]'; homeostat plugin inspect --grant-line plugins/{{wasm}}.wasm; } > grants.toml
homeostat run --plugin-dir plugins --grants grants.toml --converged-timeout 1 example.yaml
cat /tmp/{{name}}-example.txt
```

Rebuilding changes the SHA-256: update `grants.toml` after every build.

## Test

```sh
cargo test --target x86_64-unknown-linux-gnu     # the pure logic, natively, and the kit
```

`tests/kit.rs` is the test kit: it builds the plugin and runs `tests/kit.yaml` through
homeostat's real runtime and sandbox in a temporary root (`$ROOT`), as check, apply and
check again (`homeostat plugin test PLUGIN.wasm tests/kit.yaml` by hand); the second
check must find nothing to change.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_types() {
        assert_eq!(camel("line"), "Line");
        assert_eq!(camel("my-thing2"), "MyThing2");
    }

    #[test]
    fn the_template_is_filled_in() {
        let files = template("my-thing", Path::new("/src/homeostat/plugins/sdk"), false);
        let all: String = files.iter().map(|(_, c)| c.as_str()).collect();
        assert!(!all.contains("{{"), "{all}");
        let edits = template("my-thing", Path::new("/sdk"), true);
        let lib = &edits.iter().find(|(p, _)| p == "src/lib.rs").unwrap().1;
        assert!(lib.contains("const EDITS: bool = true;") && !lib.contains("{{"));
        let kit = &edits.iter().find(|(p, _)| p == "tests/kit.yaml").unwrap().1;
        assert!(kit.contains("path: $ROOT/app.conf") && kit.contains("my-thing:"));
        let lib = &files.iter().find(|(p, _)| p == "src/lib.rs").unwrap().1;
        assert!(lib.contains("pub struct MyThing;") && lib.contains("\"my-thing\""));
        let cargo = &files[0].1;
        assert!(cargo.contains("path = \"/src/homeostat/plugins/sdk\""));
        assert!(files.iter().any(|(p, _)| p == "schema/my-thing.json"));
    }
}
