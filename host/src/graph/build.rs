//! [`GraphDoc`] + autoedges → the [`Graph`] the engine runs: a DAG in a petgraph
//! [`StableDiGraph`] over the document's resources (by index), with a topological order.

use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences, NodeIndexable};

use super::check::edge_endpoint_errors;
use super::decl::{GraphDoc, ResId, ResourceDecl};
use super::error::{GraphError, GraphErrors, Location};

/// What an edge carries.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EdgeInfo {
    /// The edge's `name:` (explicit edges only, when given).
    pub name: Option<String>,
    /// Refresh the downstream after the upstream changed something.
    pub notify: bool,
    /// send/recv: upstream key → downstream param.
    pub send: BTreeMap<String, String>,
    /// Added automatically (e.g. file → its parent directory's file), not written in the file.
    pub auto: bool,
}

/// A validated, acyclic resource graph. Vertices are the resources applied on this host (not
/// the `@@` exported ones); an edge `a → b` means `b` runs after `a`.
///
/// It borrows the [`GraphDoc`] it was built from: a vertex is the index of its declaration in
/// `doc.resources`, so building it copies no declaration (cloning 10 000 of them, with their
/// params and locations, cost more than the rest of building).
#[derive(Debug)]
pub struct Graph<'d> {
    doc: &'d GraphDoc,
    /// Vertex weights are indices into `doc.resources`.
    graph: StableDiGraph<usize, EdgeInfo>,
    /// The vertex of each resource (by index in `doc.resources`); `None` for exported ones.
    node_of: Vec<Option<NodeIndex>>,
    /// `kind[name]` → index in `doc.resources`, built on the first lookup by id (planning
    /// a graph without explicit edges never needs it).
    by_id: OnceLock<HashMap<(&'d str, &'d str), usize>>,
    order: Vec<NodeIndex>,
}

impl<'d> Graph<'d> {
    /// The `graph:` name.
    pub fn name(&self) -> &'d str {
        &self.doc.name
    }

    /// How many vertices there are.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether there are no vertices.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The vertices in topological order (every resource after all it depends on); among
    /// independent resources, file order.
    pub fn vertices(&self) -> impl Iterator<Item = &'d ResourceDecl> + '_ {
        self.order.iter().map(|&i| self.decl(i))
    }

    /// The vertices in topological order, as indices into the document's `resources`.
    pub fn order(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.order.iter().map(|&i| self.graph[i])
    }

    /// The vertex ids in topological order.
    pub fn topo_order(&self) -> Vec<ResId> {
        self.vertices().map(ResourceDecl::id).collect()
    }

    /// The resource `id`, if it is a vertex.
    pub fn get(&self, id: &ResId) -> Option<&'d ResourceDecl> {
        self.index_of(id).map(|i| self.decl(i))
    }

    /// Whether `id` is a vertex.
    pub fn contains(&self, id: &ResId) -> bool {
        self.index_of(id).is_some()
    }

    /// The petgraph index of `id`, for use with [`Graph::petgraph`].
    pub fn index_of(&self, id: &ResId) -> Option<NodeIndex> {
        let by_id = self.by_id.get_or_init(|| index_by_id(self.doc));
        by_id
            .get(&(id.kind.as_str(), id.name.as_str()))
            .and_then(|&r| self.node_of[r])
    }

    /// What `id` depends on: each upstream resource with the edge to `id` (empty if `id` is
    /// not a vertex).
    pub fn predecessors(
        &self,
        id: &ResId,
    ) -> impl Iterator<Item = (&'d ResourceDecl, &EdgeInfo)> + '_ {
        self.neighbours(self.index_of(id), Direction::Incoming)
            .map(|(r, e)| (&self.doc.resources[r], e))
    }

    /// What depends on `id`: each downstream resource with the edge from `id` (empty if `id`
    /// is not a vertex).
    pub fn successors(
        &self,
        id: &ResId,
    ) -> impl Iterator<Item = (&'d ResourceDecl, &EdgeInfo)> + '_ {
        self.neighbours(self.index_of(id), Direction::Outgoing)
            .map(|(r, e)| (&self.doc.resources[r], e))
    }

    /// [`Graph::successors`] by index into the document's `resources`, without a lookup by
    /// id: each downstream resource's index with the edge to it.
    pub fn successors_at(&self, resource: usize) -> impl Iterator<Item = (usize, &EdgeInfo)> + '_ {
        self.neighbours(
            self.node_of.get(resource).copied().flatten(),
            Direction::Outgoing,
        )
    }

    fn neighbours(
        &self,
        node: Option<NodeIndex>,
        dir: Direction,
    ) -> impl Iterator<Item = (usize, &EdgeInfo)> + '_ {
        node.into_iter()
            .flat_map(move |i| self.graph.edges_directed(i, dir))
            .map(move |e| {
                let other = if dir == Direction::Incoming {
                    e.source()
                } else {
                    e.target()
                };
                (self.graph[other], e.weight())
            })
    }

    /// Every edge as (upstream, downstream, info).
    pub fn edges(
        &self,
    ) -> impl Iterator<Item = (&'d ResourceDecl, &'d ResourceDecl, &EdgeInfo)> + '_ {
        self.graph
            .edge_references()
            .map(|e| (self.decl(e.source()), self.decl(e.target()), e.weight()))
    }

    /// The underlying petgraph graph; vertex weights are indices into the document's
    /// `resources`.
    pub fn petgraph(&self) -> &StableDiGraph<usize, EdgeInfo> {
        &self.graph
    }

    fn decl(&self, node: NodeIndex) -> &'d ResourceDecl {
        &self.doc.resources[self.graph[node]]
    }
}

/// `kind[name]` → index of every resource of `doc` (names are unique per kind: `parse`
/// refuses duplicates).
fn index_by_id(doc: &GraphDoc) -> HashMap<(&str, &str), usize> {
    doc.resources
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.kind.as_str(), r.name.as_str()), i))
        .collect()
}

/// Builds the graph of `doc`'s non-exported resources with its explicit edges plus the `auto`
/// dependency edges `(from, to)` computed elsewhere (see [`super::path_autoedges`]), given as
/// indices into `doc.resources`.
///
/// An auto edge is skipped when its `to` has `meta: {autoedge: false}`, when it duplicates an
/// explicit (or earlier auto) edge, when it is a self-loop, or when an end is not a vertex.
/// Errors: dangling or duplicate explicit edges, and every dependency cycle, listed in order
/// with each resource's location.
pub fn build<'d>(doc: &'d GraphDoc, auto: &[(usize, usize)]) -> Result<Graph<'d>, GraphErrors> {
    let mut errors = edge_endpoint_errors(doc);
    let vertices = doc.resources.iter().filter(|r| !r.exported).count();
    let mut graph = StableDiGraph::with_capacity(vertices, doc.edges.len() + auto.len());
    let node_of: Vec<Option<NodeIndex>> = doc
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| (!r.exported).then(|| graph.add_node(i)))
        .collect();
    let by_id = OnceLock::new();
    let mut explicit: HashMap<(NodeIndex, NodeIndex), &Location> = HashMap::new();
    if !doc.edges.is_empty() {
        let index = by_id.get_or_init(|| index_by_id(doc));
        let node = |id: &ResId| {
            index
                .get(&(id.kind.as_str(), id.name.as_str()))
                .and_then(|&r| node_of[r])
        };
        for (n, e) in doc.edges.iter().enumerate() {
            let (Some(a), Some(b)) = (node(&e.from), node(&e.to)) else {
                continue; // reported by edge_endpoint_errors
            };
            match explicit.entry((a, b)) {
                MapEntry::Occupied(first) => errors.push(GraphError::Duplicate {
                    loc: e.loc.clone(),
                    message: format!(
                        "{} repeats the edge {} -> {} already declared at {}; merge the two",
                        e.label(n),
                        e.from,
                        e.to,
                        first.get()
                    ),
                }),
                MapEntry::Vacant(v) => {
                    v.insert(&e.loc);
                    graph.add_edge(
                        a,
                        b,
                        EdgeInfo {
                            name: e.name.clone(),
                            notify: e.notify,
                            send: e.send.clone(),
                            auto: false,
                        },
                    );
                }
            }
        }
    }
    let mut autos: HashSet<(NodeIndex, NodeIndex)> = HashSet::new();
    for &(from, to) in auto {
        let (Some(&Some(a)), Some(&Some(b))) = (node_of.get(from), node_of.get(to)) else {
            continue;
        };
        if a == b || !doc.resources[to].meta.autoedge || explicit.contains_key(&(a, b)) {
            continue;
        }
        if autos.insert((a, b)) {
            graph.add_edge(
                a,
                b,
                EdgeInfo {
                    auto: true,
                    ..EdgeInfo::default()
                },
            );
        }
    }
    errors.extend(cycle_errors(doc, &graph));
    GraphErrors::check(errors)?;
    let order = topo_order(&graph);
    Ok(Graph {
        doc,
        graph,
        node_of,
        by_id,
        order,
    })
}

/// Kahn's algorithm; among ready vertices the earliest declared goes first.
fn topo_order(graph: &StableDiGraph<usize, EdgeInfo>) -> Vec<NodeIndex> {
    // No vertex is ever removed, so node indices are dense: count in-degrees in a vector.
    let mut indegree = vec![0usize; graph.node_bound()];
    for e in graph.edge_references() {
        indegree[e.target().index()] += 1;
    }
    let mut ready: BinaryHeap<Reverse<NodeIndex>> = graph
        .node_indices()
        .filter(|i| indegree[i.index()] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(graph.node_count());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for next in graph.neighbors_directed(i, Direction::Outgoing) {
            let d = &mut indegree[next.index()];
            *d -= 1;
            if *d == 0 {
                ready.push(Reverse(next));
            }
        }
    }
    order
}

/// One error per strongly connected component that holds a cycle (or per self-loop).
fn cycle_errors(doc: &GraphDoc, graph: &StableDiGraph<usize, EdgeInfo>) -> Vec<GraphError> {
    let mut errors = Vec::new();
    for mut scc in tarjan_scc(graph) {
        scc.sort();
        let start = scc[0];
        let cyclic = scc.len() > 1 || graph.find_edge(start, start).is_some();
        if !cyclic {
            continue;
        }
        let path = shortest_cycle(graph, start, &scc);
        errors.push(cycle_error(doc, graph, &path));
    }
    errors
}

/// The shortest cycle through `start` staying inside its component: `start, …, last` where
/// `last → start` is an edge.
fn shortest_cycle(
    graph: &StableDiGraph<usize, EdgeInfo>,
    start: NodeIndex,
    scc: &[NodeIndex],
) -> Vec<NodeIndex> {
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(i) = queue.pop_front() {
        // Deterministic: visit neighbours in index (declaration) order.
        let mut next: Vec<NodeIndex> = graph.neighbors_directed(i, Direction::Outgoing).collect();
        next.sort();
        for n in next {
            if n == start {
                let mut path = vec![i];
                let mut cur = i;
                // Every queued vertex but `start` has a parent, so this reaches `start`.
                while let Some(&p) = parent.get(&cur).filter(|_| cur != start) {
                    cur = p;
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if scc.binary_search(&n).is_ok() && !parent.contains_key(&n) {
                parent.insert(n, i);
                queue.push_back(n);
            }
        }
    }
    vec![start]
}

/// Longest cycle spelled out in full; longer ones show their start and end.
const MAX_CYCLE_SHOWN: usize = 12;

fn cycle_error(
    doc: &GraphDoc,
    graph: &StableDiGraph<usize, EdgeInfo>,
    path: &[NodeIndex],
) -> GraphError {
    let decl = |i: NodeIndex| &doc.resources[graph[i]];
    let shown: Vec<Option<NodeIndex>> = if path.len() <= MAX_CYCLE_SHOWN {
        path.iter().copied().map(Some).collect()
    } else {
        let half = MAX_CYCLE_SHOWN / 2;
        let mut v: Vec<Option<NodeIndex>> = path[..half].iter().copied().map(Some).collect();
        v.push(None);
        v.extend(path[path.len() - half..].iter().copied().map(Some));
        v
    };
    let mut chain = String::from("cycle: ");
    for i in &shown {
        match i {
            Some(i) => chain.push_str(&format!("{} -> ", decl(*i).id())),
            None => chain.push_str(&format!("… ({} more) … -> ", path.len() - MAX_CYCLE_SHOWN)),
        }
    }
    chain.push_str(&decl(path[0]).id().to_string());
    let mut autos = Vec::new();
    for (k, &i) in path.iter().enumerate() {
        let next = path[(k + 1) % path.len()];
        if let Some(e) = graph.find_edge(i, next)
            && graph[e].auto
            && autos.len() < MAX_CYCLE_SHOWN
        {
            autos.push(format!("{} -> {}", decl(i).id(), decl(next).id()));
        }
    }
    let places: Vec<String> = shown
        .iter()
        .flatten()
        .map(|&i| format!("{} at {}", decl(i).id(), decl(i).loc))
        .collect();
    let mut message = format!("{chain} ({})", places.join(", "));
    if autos.is_empty() {
        message.push_str("; remove one of these edges");
    } else {
        message.push_str(&format!(
            "; {} added automatically (set `meta: {{autoedge: false}}` on the downstream \
             resource to drop it) — remove one of these edges",
            if autos.len() == 1 {
                format!("the edge {} is", autos[0])
            } else {
                format!("the edges {} are", autos.join(", "))
            }
        ));
    }
    GraphError::Cycle {
        loc: decl(path[0]).loc.clone(),
        message,
    }
}
