//! Where a remote graph runs: its `remote: ssh://user[:password]@host[:port]` (mgmt's
//! key), read from the graph file on the initiator, and the host name it gets in the
//! cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::graph::GraphDoc;

/// SSH's port when the URL names none.
pub const DEFAULT_PORT: u16 = 22;
/// The user when the URL names none: the one running the initiator, as `ssh` does.
fn default_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}

/// One parsed `remote:` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SshUrl {
    pub user: String,
    /// A password in the URL: works, and is warned about (it sits in a file in clear).
    pub password: Option<String>,
    /// As written (a name or an address; IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl std::fmt::Debug for SshUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(f, "ssh://{}@{}:{}", self.user, self.host, self.port)
    }
}

impl std::fmt::Display for SshUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl SshUrl {
    /// Parses `ssh://[user[:password]@]host[:port]` (percent-encoding decoded, as in
    /// any URL); anything else (another scheme, a path, a query) is refused, naming what.
    pub fn parse(text: &str) -> Result<SshUrl, String> {
        let url = url::Url::parse(text)
            .map_err(|e| format!("`{text}` is not a URL ({e}); expected ssh://user@host:port"))?;
        if url.scheme() != "ssh" {
            return Err(format!(
                "`{text}`: the scheme must be ssh://, found {}://",
                url.scheme()
            ));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => {
                return Err(format!(
                    "`{text}` names no host; expected ssh://user@host:port"
                ));
            }
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{text}`: an ssh:// target is user@host:port, without a path or query"
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("`{text}`: the user or password is not UTF-8"))
        };
        let user = match url.username() {
            "" => default_user(),
            u => decode(u)?,
        };
        let password = url.password().map(decode).transpose()?;
        Ok(SshUrl {
            user,
            password,
            host,
            port: url.port().unwrap_or(DEFAULT_PORT),
        })
    }

    /// `host:port` for a TCP connect (IPv6 in brackets).
    pub fn socket(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One remote graph to run: its file, its target, and the name its host gets.
#[derive(Debug, Clone)]
pub struct Target {
    /// The graph file on the initiator (watched for live push).
    pub graph: PathBuf,
    pub url: SshUrl,
    /// The host's name in the cluster: the URL's host (mgmt's rule), unique.
    pub hostname: String,
}

/// The targets of `--remote` graph files, parsed (each must have `remote:`); two graphs
/// naming one host are refused (their exports and converged state would collide), and so
/// is a target named like the initiator itself.
pub fn targets(docs: &[(PathBuf, GraphDoc)], me: &str) -> Result<Vec<Target>, String> {
    let mut errors = Vec::new();
    let mut out: Vec<Target> = Vec::new();
    let mut seen: BTreeMap<String, &Path> = BTreeMap::new();
    for (path, doc) in docs {
        let Some((text, loc)) = &doc.remote else {
            errors.push(format!(
                "{}: a --remote graph needs `remote: ssh://user@host:port` (where it runs)",
                path.display()
            ));
            continue;
        };
        let url = match SshUrl::parse(text) {
            Ok(url) => url,
            Err(e) => {
                errors.push(format!("{loc}: {e}"));
                continue;
            }
        };
        let hostname = url.host.clone();
        if let Some(first) = seen.get(&hostname) {
            errors.push(format!(
                "{}: host `{hostname}` is already the target of {}; each host runs one \
                 graph (merge them, or give the host once)",
                path.display(),
                first.display()
            ));
            continue;
        }
        if hostname == me {
            errors.push(format!(
                "{}: `{hostname}` is the initiator's own host name; run that graph here \
                 instead, or give this host another --hostname",
                path.display()
            ));
            continue;
        }
        seen.insert(hostname.clone(), path);
        out.push(Target {
            graph: path.clone(),
            url,
            hostname,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

/// A target with the graphs its host runs remotely below it (hierarchical remote
/// execution): shipped along, and run from there one level deeper.
#[derive(Debug, Clone)]
pub struct Node {
    pub target: Target,
    pub doc: GraphDoc,
    /// Every graph below this one (children, grandchildren, ...), with its target.
    pub below: Vec<(Target, GraphDoc)>,
}

impl Node {
    /// Every graph file of this subtree, this node's first.
    pub fn files(&self) -> Vec<&Path> {
        std::iter::once(self.target.graph.as_path())
            .chain(self.below.iter().map(|(t, _)| t.graph.as_path()))
            .collect()
    }

    /// Every document of this subtree.
    pub fn docs(&self) -> Vec<&GraphDoc> {
        std::iter::once(&self.doc)
            .chain(self.below.iter().map(|(_, d)| d))
            .collect()
    }
}

/// The graph files a graph's `remotes:` lists, relative to its own directory.
pub fn remotes_of(path: &Path, doc: &GraphDoc) -> Vec<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    doc.remotes.iter().map(|(p, _)| dir.join(p)).collect()
}

/// A graph run at depth `level` may list `remotes:` only above `max_depth`.
pub fn check_depth(path: &Path, level: u32, max_depth: u32) -> Result<(), String> {
    if level < max_depth {
        return Ok(());
    }
    Err(format!(
        "{}: lists `remotes:` but runs at depth {level}, and --max-depth is {max_depth}",
        path.display()
    ))
}

/// The targets of `graphs` (run at `depth` + 1 by the host at `depth`, named `me`), each
/// with the graphs below it, read and checked before anything is copied: every host
/// name unique in the whole tree, and no graph below `max_depth` listing remotes.
pub fn tree(
    graphs: &[PathBuf],
    me: &str,
    depth: u32,
    max_depth: u32,
    max_bytes: u64,
) -> Result<Vec<Node>, String> {
    let parse = |files: &[PathBuf]| parse_graphs(files, max_bytes);
    let docs = parse(graphs)?;
    let top = targets(&docs, me)?;
    let mut seen: BTreeMap<String, PathBuf> = top
        .iter()
        .map(|t| (t.hostname.clone(), t.graph.clone()))
        .collect();
    seen.insert(me.to_string(), PathBuf::from("(this host)"));
    let mut nodes = Vec::new();
    let mut errors = Vec::new();
    for (target, (_, doc)) in top.into_iter().zip(docs) {
        let mut below = Vec::new();
        // (graph, its document, the depth of the host that runs it)
        let mut queue = vec![(target.graph.clone(), doc.clone(), depth + 1)];
        while let Some((path, doc, level)) = queue.pop() {
            let children = remotes_of(&path, &doc);
            if children.is_empty() {
                continue;
            }
            if let Err(e) = check_depth(&path, level, max_depth) {
                errors.push(e);
                continue;
            }
            let parsed = match parse(&children) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let found = match targets(&parsed, me) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for (t, (_, d)) in found.into_iter().zip(parsed) {
                if let Some(first) = seen.get(&t.hostname) {
                    errors.push(format!(
                        "{}: host `{}` is already the target of {}; a host runs one graph in the whole tree",
                        t.graph.display(),
                        t.hostname,
                        first.display()
                    ));
                    continue;
                }
                seen.insert(t.hostname.clone(), t.graph.clone());
                queue.push((t.graph.clone(), d.clone(), level + 1));
                below.push((t, d));
            }
        }
        nodes.push(Node { target, doc, below });
    }
    if errors.is_empty() {
        Ok(nodes)
    } else {
        Err(errors.join("\n"))
    }
}

/// The `--remote` graph files, read and parsed (for their targets) before anything runs.
pub fn parse_graphs(
    files: &[PathBuf],
    max_bytes: u64,
) -> Result<Vec<(PathBuf, crate::graph::GraphDoc)>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match crate::plan::read(f, max_bytes).and_then(|text| crate::plan::parse_text(f, &text)) {
            Ok(doc) => out.push((f.clone(), doc)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_like_ssh_targets() {
        let u = SshUrl::parse("ssh://root@10.0.0.1:2222").unwrap();
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port),
            ("root", "10.0.0.1", 2222)
        );
        assert_eq!(u.password, None);
        let u = SshUrl::parse("ssh://ops:p%40ss@web1.example").unwrap();
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!((u.host.as_str(), u.port), ("web1.example", 22));
        assert_eq!(u.socket(), "web1.example:22");
        let u = SshUrl::parse("ssh://root@[fd00::1]:22").unwrap();
        assert_eq!(u.socket(), "[fd00::1]:22");
        assert!(!format!("{u:?}{u}").contains("p@ss"));
        let u = SshUrl::parse("ssh://ops:secret@h").unwrap();
        assert!(!format!("{u:?} {u}").contains("secret"), "{u}");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (text, want) in [
            ("http://h", "the scheme must be ssh://"),
            ("ssh://h/tmp", "without a path"),
            ("ssh://", "names no host"),
            ("h:22", "the scheme must be ssh://"),
            ("not a url", "is not a URL"),
        ] {
            let e = SshUrl::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    fn doc(remote: Option<&str>) -> GraphDoc {
        let text = match remote {
            Some(r) => format!("graph: g\nremote: {r}\n"),
            None => "graph: g\n".into(),
        };
        crate::graph::parse(Path::new("g.yaml"), &text).unwrap()
    }

    #[test]
    fn a_host_runs_one_graph_in_the_whole_tree() {
        let t = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| {
            let p = t.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        w("leaf.yaml", "graph: leaf\nremote: ssh://root@h1\n");
        w("ok.yaml", "graph: ok\nremote: ssh://root@h3\n");
        let mid = w(
            "mid.yaml",
            "graph: mid\nremote: ssh://root@h2\nremotes: [leaf.yaml, ok.yaml]\n",
        );
        let top = w("top.yaml", "graph: top\nremote: ssh://root@h1\n");
        let e = tree(&[top.clone(), mid.clone()], "me", 0, 3, 1 << 20).unwrap_err();
        assert!(
            e.contains("leaf.yaml: host `h1` is already the target of"),
            "{e}"
        );
        let nodes = tree(&[mid], "me", 0, 3, 1 << 20).unwrap();
        assert_eq!(nodes.len(), 1);
        let below: Vec<&str> = nodes[0]
            .below
            .iter()
            .map(|(t, _)| t.hostname.as_str())
            .collect();
        assert_eq!(below.len(), 2);
        assert!(below.contains(&"h1") && below.contains(&"h3"), "{below:?}");
        assert_eq!(nodes[0].files().len(), 3);
    }

    #[test]
    fn duplicate_hosts_and_missing_targets_are_refused() {
        let docs = vec![
            (PathBuf::from("a.yaml"), doc(Some("ssh://root@h1"))),
            (PathBuf::from("b.yaml"), doc(Some("ssh://other@h1:2222"))),
            (PathBuf::from("c.yaml"), doc(None)),
            (PathBuf::from("d.yaml"), doc(Some("ssh://root@me"))),
        ];
        let e = targets(&docs, "me").unwrap_err();
        assert!(
            e.contains("b.yaml: host `h1` is already the target of a.yaml"),
            "{e}"
        );
        assert!(e.contains("c.yaml: a --remote graph needs `remote:"), "{e}");
        assert!(
            e.contains("d.yaml: `me` is the initiator's own host name"),
            "{e}"
        );
        let ok = targets(&docs[..1], "me").unwrap();
        assert_eq!(ok[0].hostname, "h1");
    }
}
