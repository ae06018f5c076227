//! `run --only KIND[NAME]` and `run --tags TAG`: run a part of the graph. The resources
//! selected (named by `--only`, or carrying one of the `--tags` in `meta: {tags: [...]}`)
//! run together with everything they depend on, transitively, so that what runs is in
//! the same order and state as in a whole run. Resources that only depend on the
//! selection (its dependents) do not run: they are left as they are and reported as not
//! targeted. Edges between resources that run are kept, notify and send/recv included.

use std::collections::BTreeSet;

use crate::engine::{Plan, PlannedEdge};
use crate::graph::ResId;

/// What to run: resources by id and by tag (either selects).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub only: Vec<ResId>,
    pub tags: Vec<String>,
}

impl Selection {
    /// No `--only` and no `--tags`: the whole graph runs.
    pub fn is_everything(&self) -> bool {
        self.only.is_empty() && self.tags.is_empty()
    }
}

/// Parses `kind[name]` as `--only` takes it.
pub fn parse_id(text: &str) -> Result<ResId, String> {
    let bad = || format!("`{text}` is not a resource: write it kind[name], e.g. file[motd]");
    let (kind, rest) = text.split_once('[').ok_or_else(bad)?;
    let name = rest.strip_suffix(']').ok_or_else(bad)?;
    if kind.is_empty() || name.is_empty() {
        return Err(bad());
    }
    Ok(ResId::new(kind, name))
}

/// `plan` cut down to `sel` and what it depends on; also the resources left out, in
/// graph order. An `--only` naming no resource of the graph, or tags no resource carries,
/// is an error: a typo must not run nothing and report success.
pub fn select(plan: Plan, sel: &Selection) -> Result<(Plan, Vec<ResId>), String> {
    if sel.is_everything() {
        return Ok((plan, Vec::new()));
    }
    let missing: Vec<String> = sel
        .only
        .iter()
        .filter(|id| !plan.resources.iter().any(|r| &r.id == *id))
        .map(ResId::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "--only names what graph `{}` does not have: {}",
            plan.name,
            missing.join(", ")
        ));
    }
    let mut keep = vec![false; plan.resources.len()];
    let mut todo: Vec<usize> = plan
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            sel.only.contains(&r.id) || r.meta.tags.iter().any(|t| sel.tags.contains(t))
        })
        .map(|(i, _)| i)
        .collect();
    if todo.is_empty() {
        let known: BTreeSet<&str> = plan
            .resources
            .iter()
            .flat_map(|r| r.meta.tags.iter().map(String::as_str))
            .collect();
        return Err(format!(
            "no resource of graph `{}` has the tags {}; the tags it uses: {}",
            plan.name,
            sel.tags.join(", "),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.into_iter().collect::<Vec<_>>().join(", ")
            }
        ));
    }
    // Everything the selection depends on, transitively (edges point from a dependency
    // to its dependent).
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); plan.resources.len()];
    for e in &plan.edges {
        preds[e.to].push(e.from);
    }
    while let Some(i) = todo.pop() {
        if !std::mem::replace(&mut keep[i], true) {
            todo.extend(&preds[i]);
        }
    }
    let mut index = vec![usize::MAX; plan.resources.len()];
    let mut resources = Vec::new();
    let mut left_out = Vec::new();
    for (i, r) in plan.resources.into_iter().enumerate() {
        if keep[i] {
            index[i] = resources.len();
            resources.push(r);
        } else {
            left_out.push(r.id);
        }
    }
    let edges = plan
        .edges
        .into_iter()
        .filter(|e| keep[e.from] && keep[e.to])
        .map(|e| PlannedEdge {
            from: index[e.from],
            to: index[e.to],
            ..e
        })
        .collect();
    Ok((
        Plan {
            name: plan.name,
            resources,
            edges,
        },
        left_out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kind_and_name() {
        assert_eq!(parse_id("file[motd]"), Ok(ResId::new("file", "motd")));
        assert_eq!(
            parse_id("svc[getty@tty1.service]"),
            Ok(ResId::new("svc", "getty@tty1.service"))
        );
        for bad in ["file", "file[]", "[x]", "file[x", "filex]"] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }
}
