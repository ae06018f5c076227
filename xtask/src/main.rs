//! Project tasks, so the README needs only two commands.
//!
//! - `cargo xtask demo`: install the `wasm32-wasip2` target and `protoc` (Debian's
//!   `protobuf-compiler` and `libprotobuf-dev`, which etcd-client's build needs; with
//!   apt-get when missing and running as root), build the plugins and the host, run
//!   `examples/hello.yaml` until it converges.
//! - `cargo xtask test`: the system packages the build and the suites need (`protoc`, a
//!   systemd user manager, `curl`, etcd and `etcdctl`, ...; installed with apt-get when missing and running as root), the same
//!   builds plus the test fixtures, then the whole suite (the plugins' native unit
//!   tests, then the host workspace's tests), then the host crate's API docs with
//!   rustdoc's warnings as errors (a broken intra-doc link fails the run).
//! - `cargo xtask build-plugins`: only the wasm parts (bundled plugins into
//!   `target/plugins/`, test fixtures into `target/test-plugins/`, the third-party
//!   example into `target/example-plugins/`).
//! - `cargo xtask bench`: the benchmark table of docs/performance.md.
//! - `cargo xtask dist [--musl]`: the binary to ship to other hosts
//!   (`homeostat run --remote-binary`): a release build without its debug information
//!   and symbols, in `target/dist/`; with `--musl`, statically linked against musl (for
//!   hosts of any Linux distribution).
//!
//! Plugins are built by a separate cargo invocation in their own workspace, never from
//! the host's build script (a nested cargo there deadlocks on the target-dir lock and
//! inherits RUSTFLAGS and wrappers meant for the host).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Variables of the outer cargo that must not leak into the plugin builds.
const LEAKY_ENV: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_MAKEFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    let result = match args.first().map(String::as_str) {
        Some("build-plugins") => build_plugins(&root),
        Some("demo") => demo(&root, &args[1..]),
        Some("test") => test(&root, &args[1..]),
        Some("bench") => bench(&root, &args[1..]),
        Some("dist") => dist(&root, &args[1..]).map(|_| ()),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  demo           build everything and run examples/hello.yaml\n  \
                 test [ARGS]    build everything and run the whole test suite (ARGS go to cargo test)\n  \
                 test --faults [SECS]  the cluster's randomized fault schedule (default 120 s)\n  \
                 build-plugins  build the bundled plugins, the test plugins and the third-party example\n  \
                 bench [ARGS]   run the benchmark (see docs/performance.md)\n  \
                 dist [--musl]  a stripped release binary to ship to remote hosts, in target/dist/"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    for var in LEAKY_ENV {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// `rustup target add wasm32-wasip2` unless it is installed (RUSTUP_AUTO_INSTALL may be off).
fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "wasm32-wasip2")
        })
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    eprintln!("xtask: installing the wasm32-wasip2 target");
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))
}

/// Build a plugin workspace for wasm32-wasip2 and copy each `.wasm` into `out`, named
/// after the crate with any `homeostat_` / `homeostat-` prefix removed.
fn build_wasm_workspace(dir: &Path, out: &Path) -> Result<(), String> {
    run(Command::new(env!("CARGO")).current_dir(dir).args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--workspace",
    ]))?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let built = dir.join("target/wasm32-wasip2/release");
    let entries =
        std::fs::read_dir(&built).map_err(|e| format!("cannot read {}: {e}", built.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let name = stem
                .trim_start_matches("homeostat_")
                .trim_start_matches("homeostat-");
            // Fixtures that cannot be loaded (`broken-*` crates) go apart, so that loading
            // the directory of the others is not disturbed by them.
            let dest = if name.starts_with("broken_") {
                let dir = out.join("broken");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                dir.join(format!("{name}.wasm"))
            } else {
                out.join(format!("{name}.wasm"))
            };
            // Copy only when different, so the host's build script does not re-run.
            let same = std::fs::read(&dest).ok() == std::fs::read(&path).ok();
            if !same {
                std::fs::copy(&path, &dest)
                    .map_err(|e| format!("cannot copy to {}: {e}", dest.display()))?;
            }
        }
    }
    Ok(())
}

fn build_plugins(root: &Path) -> Result<(), String> {
    ensure_wasm_target()?;
    build_wasm_workspace(&root.join("plugins"), &root.join("target/plugins"))?;
    build_wasm_workspace(
        &root.join("tests/plugins"),
        &root.join("target/test-plugins"),
    )?;
    // The third-party example, built as its README builds it (its own workspace).
    build_wasm_workspace(
        &root.join("examples/third-party-plugin"),
        &root.join("target/example-plugins"),
    )
}

/// The componentize-py the Python plugin suite (`tests/python.rs`) builds with.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// Build the Python test plugins (`tests/plugins-py/NAME/app.py`) with componentize-py
/// into `target/python-plugins/NAME.wasm`, without a manifest (the suite packs them).
/// componentize-py is installed with pip when it is missing; when that fails too (no
/// Python, no package index), the Python suite is told why (`HOMEOSTAT_SKIP_PYTHON`) and
/// skips, and the rest of the suite runs. Whether they were built.
fn build_python_plugins(root: &Path) -> Result<(), String> {
    let have = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    if !have(Command::new("componentize-py").arg("--version")) {
        eprintln!("xtask: installing {COMPONENTIZE_PY} (for the Python plugin suite)");
        if !have(Command::new("python3").args(["-m", "pip", "install", "--quiet", COMPONENTIZE_PY]))
        {
            return Err(format!("cannot install {COMPONENTIZE_PY} with pip"));
        }
    }
    let out = root.join("target/python-plugins");
    let dirs = std::fs::read_dir(root.join("tests/plugins-py"))
        .map_err(|e| format!("cannot read tests/plugins-py: {e}"))?;
    let _ = std::fs::create_dir_all(&out);
    for dir in dirs.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // The default build, and one with WASI stubbed out (more core instances).
        for (suffix, flags) in [("", &[][..]), ("-stub", &["--stub-wasi"][..])] {
            let wasm = out.join(format!("{name}{suffix}.wasm"));
            let newer = |p: &Path| {
                let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                match (m(p), m(&wasm)) {
                    (Some(a), Some(b)) => a > b,
                    _ => true,
                }
            };
            if !newer(&dir.join("app.py")) && !newer(&root.join("wit/v0.1/resource.wit")) {
                continue;
            }
            let built = Command::new("componentize-py")
                .current_dir(root)
                .args(["-d", "wit/v0.1", "-w", "resource-plugin", "componentize"])
                .args(flags)
                .arg("-p")
                .arg(&dir)
                .args(["app", "-o"])
                .arg(&wasm)
                .output();
            if !built.as_ref().is_ok_and(|o| o.status.success()) {
                let _ = std::fs::remove_file(&wasm);
                return Err(format!(
                    "componentize-py failed for {}{}",
                    dir.display(),
                    built
                        .map(|o| format!(":\n{}", String::from_utf8_lossy(&o.stderr)))
                        .unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

fn demo(root: &Path, extra: &[String]) -> Result<(), String> {
    ensure_packages(BUILD_PACKAGES, "building homeostat")?;
    build_plugins(root)?;
    run(Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["build", "--bin", "homeostat"]))?;
    let bin = root.join("target/debug/homeostat");
    let mut cmd = Command::new(bin);
    cmd.current_dir(root)
        .args(["run", "examples/hello.yaml", "--converged-timeout", "2"])
        .args(extra);
    run(&mut cmd)
}

/// Debian packages the host's build needs: `protoc`, for etcd-client's generated gRPC
/// code, and the protobuf well-known types its `.proto` files import
/// (`google/protobuf/descriptor.proto`), which Debian ships in `libprotobuf-dev`, only a
/// recommendation of `protobuf-compiler` (and recommendations are not installed here).
const BUILD_PACKAGES: &[(&str, &str)] = &[
    ("protobuf-compiler", "/usr/bin/protoc"),
    (
        "libprotobuf-dev",
        "/usr/include/google/protobuf/descriptor.proto",
    ),
];

/// Debian packages the end-to-end suites use, each with a file that shows it is there.
/// The svc suite runs a real `systemd --user` manager on its own session bus; the exec
/// suite creates a user with `useradd`; the provision suite downloads with `curl` (TFTP
/// and HTTP); the world suite runs real etcd servers (`etcd-server`) and reads them with
/// `etcdctl` (`etcd-client`). The SSH harness (`tests/src/ssh.rs`) simulates remote hosts
/// as real `sshd`s (`openssh-server`) in network namespaces made with `ip` (`iproute2`),
/// with keys made by `ssh-keygen` and checked with the real `ssh` client
/// (`openssh-client`). The users suite runs `useradd` & co. (`passwd`), the sysctl suite
/// `sysctl` (`procps`), and the pkg suite builds packages with `dpkg-deb` and indexes
/// them with `dpkg-scanpackages` (`dpkg-dev`), each in namespaces of its own.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("etcd-server", "/usr/bin/etcd"),
    ("etcd-client", "/usr/bin/etcdctl"),
    ("systemd", "/lib/systemd/systemd"),
    ("dbus", "/usr/bin/dbus-daemon"),
    ("dbus-user-session", "/usr/lib/systemd/user/dbus.socket"),
    ("passwd", "/usr/sbin/useradd"),
    ("procps", "/usr/sbin/sysctl"),
    ("dpkg-dev", "/usr/bin/dpkg-scanpackages"),
    ("curl", "/usr/bin/curl"),
    ("ca-certificates", "/etc/ssl/certs"),
    ("openssh-server", "/usr/sbin/sshd"),
    ("openssh-client", "/usr/bin/ssh-keygen"),
    ("iproute2", "/usr/sbin/ip"),
];

/// Install the missing `packages` with apt-get when running as root on a system that has
/// it; otherwise say what is missing and what for (the step that needs it will fail and
/// name it).
fn ensure_packages(packages: &[(&str, &str)], what: &str) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, probe)| !Path::new(probe).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // Declared here to avoid a libc dependency.
    unsafe extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { geteuid() } == 0;
    if !root || !Path::new("/usr/bin/apt-get").exists() {
        eprintln!(
            "xtask: {what} needs these packages, which are missing: {} \
             (install them as root, e.g. `apt-get install {}`)",
            missing.join(", "),
            missing.join(" ")
        );
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(", "));
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))
}

fn test(root: &Path, extra: &[String]) -> Result<(), String> {
    let all: Vec<(&str, &str)> = BUILD_PACKAGES
        .iter()
        .chain(TEST_PACKAGES)
        .copied()
        .collect();
    ensure_packages(&all, "the test suites")?;
    build_plugins(root)?;
    // The end-to-end suites run the real binary.
    run(Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["build", "--bin", "homeostat"]))?;
    if extra.first().map(String::as_str) == Some("--faults") {
        return faults(root, &extra[1..]);
    }
    let python = build_python_plugins(root);
    let mut totals = [0u64; 3];
    // The plugins' pure logic (params, planning) is unit-tested natively: the workspace's
    // default target is wasm32-wasip2, so name the host's.
    let mut plugins = Command::new(env!("CARGO"));
    plugins.current_dir(root.join("plugins")).args([
        "test",
        "--workspace",
        "--target",
        &host_triple()?,
    ]);
    let plugins_ok = cargo_test(&mut plugins, &mut totals)?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root)
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra);
    if let Err(why) = python {
        eprintln!("xtask: warning: {why}: the Python plugin suite is skipped");
        cmd.env("HOMEOSTAT_SKIP_PYTHON", why);
    }
    let host_ok = cargo_test(&mut cmd, &mut totals)?;
    println!(
        "\ntests: {} passed, {} failed, {} skipped",
        totals[0], totals[1], totals[2]
    );
    let docs_ok = check_docs(root);
    match (plugins_ok, host_ok, docs_ok) {
        (true, true, Ok(())) => Ok(()),
        (false, _, _) => Err("the plugins' unit tests failed".into()),
        (_, false, _) => Err("cargo test failed".into()),
        (_, _, Err(e)) => Err(e),
    }
}

/// `test --faults [SECS]`: the cluster's randomized fault schedule (`tests/faults.rs`,
/// ignored by the default run), for SECS seconds (default 120).
fn faults(root: &Path, extra: &[String]) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root).args([
        "test",
        "-p",
        "homeostat-tests",
        "--test",
        "faults",
        "--",
        "--ignored",
        "--nocapture",
    ]);
    if let Some(secs) = extra.first() {
        secs.parse::<u64>()
            .map_err(|_| format!("--faults {secs}: expected a number of seconds"))?;
        cmd.env("HOMEOSTAT_FAULT_SECS", secs);
    }
    run(&mut cmd)
}

/// The host crate's API docs, private items included, and the SDK's API reference (every
/// public item documented: `#![deny(missing_docs)]`) build without a warning: a broken
/// or ambiguous intra-doc link is a defect in the docs that move with the code.
fn check_docs(root: &Path) -> Result<(), String> {
    println!("\nchecking the host crate's docs (rustdoc, warnings are errors)");
    run(Command::new(env!("CARGO"))
        .current_dir(root)
        .env("RUSTDOCFLAGS", "-D warnings")
        .args([
            "doc",
            "-p",
            "homeostat",
            "--no-deps",
            "--document-private-items",
            "--quiet",
        ]))
    .map_err(|e| format!("the host crate's docs have warnings: {e}"))?;
    println!("checking the SDK's API reference (rustdoc, warnings are errors)");
    run(Command::new(env!("CARGO"))
        .current_dir(root.join("plugins"))
        .env("RUSTDOCFLAGS", "-D warnings")
        .args([
            "doc",
            "-p",
            "homeostat-sdk",
            "--no-deps",
            "--quiet",
            "--target",
        ])
        .arg(host_triple()?))
    .map_err(|e| format!("the SDK's API reference has warnings: {e}"))
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV did not say the host triple".to_string())
}

/// Run a `cargo test`, echo its output and add its per-binary `test result:` lines to
/// `totals`, so the run ends with one total instead of the last binary's (often a
/// doc-test run of 0 tests). Whether it succeeded.
fn cargo_test(cmd: &mut Command, totals: &mut [u64; 3]) -> Result<bool, String> {
    for var in LEAKY_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for (i, word) in ["passed", "failed", "ignored"].iter().enumerate() {
                totals[i] += count_before(rest, word);
            }
        }
    }
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    Ok(status.success())
}

/// The count in front of `WORD` in a `test result:` line (`ok. 5 passed; 0 failed; ...`).
fn count_before(line: &str, word: &str) -> u64 {
    line.split(';')
        .filter_map(|part| part.trim().strip_suffix(word))
        .filter_map(|n| n.split_whitespace().last()?.parse().ok())
        .next()
        .unwrap_or(0)
}

/// Builds the binary to ship to remote hosts and returns its path: the release build
/// stripped of its debug information and symbols (about a sixth of its size; the
/// release profile keeps line tables for profiling), with `strip` from binutils, which
/// the linker comes with. `--musl`: a static build for any Linux host (installs the
/// target and Debian's `musl-tools` when missing).
fn dist(root: &Path, args: &[String]) -> Result<PathBuf, String> {
    let musl = match args {
        [] => false,
        [flag] if flag == "--musl" => true,
        _ => return Err("usage: cargo xtask dist [--musl]".into()),
    };
    build_plugins(root)?;
    let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(root)
        .args(["build", "--release", "--bin", "homeostat"]);
    let built = if musl {
        ensure_packages(&[("musl-tools", "/usr/bin/musl-gcc")], "a musl build")?;
        run(Command::new("rustup").args(["target", "add", &target]))?;
        build.args(["--target", &target]);
        root.join("target").join(&target).join("release/homeostat")
    } else {
        root.join("target/release/homeostat")
    };
    run(&mut build)?;
    let dir = root.join("target/dist");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join(if musl { "homeostat-musl" } else { "homeostat" });
    run(Command::new("strip").arg("-o").arg(&out).arg(&built))?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(0.0)
    };
    eprintln!(
        "xtask: {} ({:.0} MB; {:.0} MB before stripping): ship it with \
         `homeostat run --remote-binary {}`",
        out.display(),
        size(&out),
        size(&built),
        out.display()
    );
    Ok(out)
}

fn bench(root: &Path, extra: &[String]) -> Result<(), String> {
    if extra.first().map(String::as_str) == Some("remote") {
        // The remote bench ships the stripped binary, as an operator would.
        dist(root, &[])?;
    }
    if extra.first().map(String::as_str) == Some("peers") {
        // The peers it compares with, installed for the bench only.
        ensure_packages(
            &[
                ("puppet", "/usr/bin/puppet"),
                ("ansible-core", "/usr/bin/ansible-playbook"),
                // Ansible's `apt` module needs it (and would install it itself).
                (
                    "python3-apt",
                    "/usr/lib/python3/dist-packages/apt/__init__.py",
                ),
                // The removed-package drift builds and indexes a package.
                ("dpkg-dev", "/usr/bin/dpkg-scanpackages"),
            ],
            "the peers benchmark",
        )?;
    }
    build_plugins(root)?;
    run(Command::new(env!("CARGO")).current_dir(root).args([
        "build",
        "--release",
        "--bin",
        "homeostat",
    ]))?;
    run(Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["run", "--release", "--quiet", "-p", "homeostat-bench", "--"])
        .args(extra))
}
