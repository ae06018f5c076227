//! Embeds the bundled plugins, with the SHA-256 of each (hashing 1.2 MiB of wasm at every
//! start cost several milliseconds, a third of a small graph's run). They are built by
//! `cargo xtask build-plugins` into
//! `target/plugins/` (never by a nested cargo here: that deadlocks on the target-dir
//! lock and leaks RUSTFLAGS). `HOMEOSTAT_PLUGINS_DIR` overrides the directory.

use std::path::PathBuf;

/// Bundled plugins, by file stem in the plugins directory.
const BUNDLED: &[&str] = &[
    "file",
    "exec",
    "svc",
    "kmsg",
    "provision",
    "kv",
    "edit",
    "basic",
    "users",
    "system",
    "pkg",
];

fn main() {
    commit();
    println!("cargo:rerun-if-env-changed=HOMEOSTAT_PLUGINS_DIR");
    let dir = match std::env::var_os("HOMEOSTAT_PLUGINS_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let manifest = PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
            );
            manifest
                .parent()
                .expect("host/ has a parent")
                .join("target")
                .join("plugins")
        }
    };
    let mut code = String::from(
        "/// Bundled plugins: (file stem, wasm bytes, hex SHA-256 of the bytes).\n\
         pub static BUNDLED: &[(&str, &[u8], &str)] = &[\n",
    );
    for name in BUNDLED {
        let path = dir.join(format!("{name}.wasm"));
        if !path.is_file() {
            panic!(
                "\n\nthe bundled plugin {} is missing.\nBuild the plugins first: `cargo xtask build-plugins` \
                 (the README's commands do this for you).\n\n",
                path.display()
            );
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let wasm = std::fs::read(&path).expect("read a bundled plugin");
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?}), {sha256:?}),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("bundled.rs");
    std::fs::write(out, code).expect("write bundled.rs");
}

/// `HOMEOSTAT_COMMIT`: the commit this is built from (for `--version` and the run
/// report), `unknown` outside a git checkout. Run again when the checkout moves to
/// another commit.
fn commit() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let root = manifest.parent().expect("host/ has a parent");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = PathBuf::from(dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("packed-refs").display()
        );
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", dir.join(head).display());
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HOMEOSTAT_COMMIT={commit}");
}
