//! `kill -9` at random moments (docs/security.md, "Crash-clean state"): every managed
//! file is wholly old or wholly new after each kill, and the next start removes the
//! staging files the killed run left and converges, leaving nothing but the graph's files.
//!
//! Bounded here (`HOMEOSTAT_CRASH_ROUNDS`, default 12); run it longer with e.g.
//! `HOMEOSTAT_CRASH_ROUNDS=500 cargo test -p homeostat-tests --test crash`. Each run
//! prints its seed; `HOMEOSTAT_CRASH_SEED` replays one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use homeostat_tests::{cache_dir, run_converged, stderr, write_graph};

/// Small and large files (the large ones keep a write in flight for a while).
const SIZES: &[usize] = &[0, 1, 700, 4096, 65_537, 1 << 20, 3 << 20, 8 << 20];

/// A tiny deterministic generator (xorshift64*), so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Content of file `i` in round `round`: a header, then bytes that depend on both, so a
/// torn file (part old, part new, or cut short) matches no round.
fn content(round: u64, i: usize, len: usize) -> Vec<u8> {
    let mut out = format!("round {round} file {i}\n").into_bytes();
    let mut x = round.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64;
    while out.len() < len {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        out.push((x >> 56) as u8);
    }
    out.truncate(len);
    out
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn killed_at_random_moments_every_file_is_whole_and_nothing_is_left_behind() {
    let rounds: u64 = std::env::var("HOMEOSTAT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("HOMEOSTAT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {rounds} rounds, HOMEOSTAT_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let t = tempfile::tempdir().unwrap();
    let managed = t.path().join("managed");
    std::fs::create_dir(&managed).unwrap();
    let targets: Vec<PathBuf> = (0..SIZES.len())
        .map(|i| managed.join(format!("f{i}")))
        .collect();
    let mut sizes: Vec<usize> = SIZES.to_vec();
    // Every content each file has had so far (a killed round may leave any of them).
    let mut seen: Vec<Vec<Vec<u8>>> = vec![Vec::new(); SIZES.len()];
    let mut killed_mid_write = 0;
    // How long a run takes to converge here, so kills land anywhere in it.
    let mut span = Duration::from_millis(300);
    for round in 1..=rounds {
        // New content for every file, from source files written beforehand.
        let src = t.path().join(format!("src{round}"));
        std::fs::create_dir(&src).unwrap();
        let mut yaml = String::from("graph: crash\nresources:\n  file:\n");
        for (i, target) in targets.iter().enumerate() {
            sizes[i] = SIZES[(i + rng.next() as usize) % SIZES.len()];
            let data = content(round, i, sizes[i]);
            std::fs::write(src.join(format!("f{i}")), &data).unwrap();
            seen[i].push(data);
            yaml.push_str(&format!(
                "  - name: f{i}\n    path: {}\n    source: {}\n",
                target.display(),
                src.join(format!("f{i}")).display()
            ));
        }
        let graph = write_graph(t.path(), "g.yaml", &yaml);

        // Killed at a random moment, from before it read the graph to after it converged.
        let mut child = homeostat_tests::command()
            .arg("run")
            .arg(&graph)
            .arg("--cache-dir")
            .arg(cache_dir())
            .arg("--no-reload")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let span_us = span.as_micros().max(1) as u64;
        std::thread::sleep(Duration::from_micros(rng.next() % span_us));
        child.kill().unwrap();
        child.wait().unwrap();
        let left = names(&managed)
            .into_iter()
            .filter(|n| n.contains(".homeostat-"))
            .count();
        killed_mid_write += usize::from(left > 0);
        for (i, target) in targets.iter().enumerate() {
            if let Ok(now) = std::fs::read(target) {
                assert!(
                    seen[i].contains(&now),
                    "round {round} (seed {seed}): {} is torn: {} bytes, none of its contents",
                    target.display(),
                    now.len()
                );
            }
        }

        // The next start cleans up and converges.
        let started = std::time::Instant::now();
        let out = run_converged(&graph, "0", &["--no-reload"]);
        span = started.elapsed();
        assert!(
            out.status.success(),
            "round {round} (seed {seed}): {}",
            stderr(&out)
        );
        for (i, target) in targets.iter().enumerate() {
            assert_eq!(
                std::fs::read(target).unwrap(),
                content(round, i, sizes[i]),
                "round {round} (seed {seed}): {}",
                target.display()
            );
        }
        let expected: BTreeSet<String> = (0..SIZES.len()).map(|i| format!("f{i}")).collect();
        assert_eq!(
            names(&managed),
            expected,
            "round {round} (seed {seed}): only the graph's files remain:\n{}",
            stderr(&out)
        );
        // What the directory holds on disk is what the graph holds.
        let held: u64 = targets
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        let wanted: u64 = sizes.iter().map(|&s| s as u64).sum();
        assert_eq!(held, wanted, "round {round} (seed {seed})");
    }
    eprintln!("crash test: {killed_mid_write} of {rounds} kills left staging files, all removed");
}
