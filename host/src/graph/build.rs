//! [`GraphDoc`] + autoedges → the [`Graph`] the engine runs: a DAG in a petgraph
//! [`StableDiGraph`], with a topological order.

use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use super::check::edge_endpoint_errors;
use super::{GraphDoc, GraphError, GraphErrors, Location, ResId, ResourceDecl};

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
#[derive(Clone, Debug)]
pub struct Graph {
    name: String,
    graph: StableDiGraph<ResourceDecl, EdgeInfo>,
    index: HashMap<ResId, NodeIndex>,
    order: Vec<NodeIndex>,
}

impl Graph {
    /// The `graph:` name.
    pub fn name(&self) -> &str {
        &self.name
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
    pub fn vertices(&self) -> impl Iterator<Item = &ResourceDecl> + '_ {
        self.order.iter().map(|&i| &self.graph[i])
    }

    /// The vertex ids in topological order.
    pub fn topo_order(&self) -> Vec<ResId> {
        self.vertices().map(ResourceDecl::id).collect()
    }

    /// The resource `id`, if it is a vertex.
    pub fn get(&self, id: &ResId) -> Option<&ResourceDecl> {
        self.index.get(id).map(|&i| &self.graph[i])
    }

    /// Whether `id` is a vertex.
    pub fn contains(&self, id: &ResId) -> bool {
        self.index.contains_key(id)
    }

    /// The petgraph index of `id`, for use with [`Graph::petgraph`].
    pub fn index_of(&self, id: &ResId) -> Option<NodeIndex> {
        self.index.get(id).copied()
    }

    /// What `id` depends on: each upstream resource with the edge to `id` (empty if `id` is
    /// not a vertex).
    pub fn predecessors(
        &self,
        id: &ResId,
    ) -> impl Iterator<Item = (&ResourceDecl, &EdgeInfo)> + '_ {
        self.neighbours(id, Direction::Incoming)
    }

    /// What depends on `id`: each downstream resource with the edge from `id` (empty if `id`
    /// is not a vertex).
    pub fn successors(&self, id: &ResId) -> impl Iterator<Item = (&ResourceDecl, &EdgeInfo)> + '_ {
        self.neighbours(id, Direction::Outgoing)
    }

    fn neighbours(
        &self,
        id: &ResId,
        dir: Direction,
    ) -> impl Iterator<Item = (&ResourceDecl, &EdgeInfo)> + '_ {
        self.index
            .get(id)
            .into_iter()
            .flat_map(move |&i| self.graph.edges_directed(i, dir))
            .map(move |e| {
                let other = if dir == Direction::Incoming {
                    e.source()
                } else {
                    e.target()
                };
                (&self.graph[other], e.weight())
            })
    }

    /// Every edge as (upstream, downstream, info).
    pub fn edges(&self) -> impl Iterator<Item = (&ResourceDecl, &ResourceDecl, &EdgeInfo)> + '_ {
        self.graph
            .edge_references()
            .map(|e| (&self.graph[e.source()], &self.graph[e.target()], e.weight()))
    }

    /// The underlying petgraph graph (vertex weights are the declarations).
    pub fn petgraph(&self) -> &StableDiGraph<ResourceDecl, EdgeInfo> {
        &self.graph
    }
}

/// Builds the graph of `doc`'s non-exported resources with its explicit edges plus the `auto`
/// dependency edges `(from, to)` computed elsewhere (see [`super::path_autoedges`]).
///
/// An auto edge is skipped when its `to` has `meta: {autoedge: false}`, when it duplicates an
/// explicit (or earlier auto) edge, when it is a self-loop, or when an end is not a vertex.
/// Errors: dangling or duplicate explicit edges, and every dependency cycle, listed in order
/// with each resource's location.
pub fn build(doc: &GraphDoc, auto: &[(ResId, ResId)]) -> Result<Graph, GraphErrors> {
    let mut errors = edge_endpoint_errors(doc);
    let vertices = doc.resources.iter().filter(|r| !r.exported).count();
    let mut graph = StableDiGraph::with_capacity(vertices, doc.edges.len() + auto.len());
    let mut index = HashMap::with_capacity(vertices);
    for r in doc.resources.iter().filter(|r| !r.exported) {
        let i = graph.add_node(r.clone());
        index.insert(r.id(), i);
    }
    let mut explicit: HashMap<(NodeIndex, NodeIndex), &Location> = HashMap::new();
    for (n, e) in doc.edges.iter().enumerate() {
        let (Some(&a), Some(&b)) = (index.get(&e.from), index.get(&e.to)) else {
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
    let mut autos: HashSet<(NodeIndex, NodeIndex)> = HashSet::new();
    for (from, to) in auto {
        let (Some(&a), Some(&b)) = (index.get(from), index.get(to)) else {
            continue;
        };
        if a == b || !graph[b].meta.autoedge || explicit.contains_key(&(a, b)) {
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
    errors.extend(cycle_errors(&graph));
    GraphErrors::check(errors)?;
    let order = topo_order(&graph);
    Ok(Graph {
        name: doc.name.clone(),
        graph,
        index,
        order,
    })
}

/// Kahn's algorithm; among ready vertices the earliest declared goes first.
fn topo_order(graph: &StableDiGraph<ResourceDecl, EdgeInfo>) -> Vec<NodeIndex> {
    let mut indegree: HashMap<NodeIndex, usize> = graph
        .node_indices()
        .map(|i| (i, graph.neighbors_directed(i, Direction::Incoming).count()))
        .collect();
    let mut ready: BinaryHeap<Reverse<NodeIndex>> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(i, _)| Reverse(*i))
        .collect();
    let mut order = Vec::with_capacity(indegree.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for next in graph.neighbors_directed(i, Direction::Outgoing) {
            if let Some(d) = indegree.get_mut(&next) {
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(next));
                }
            }
        }
    }
    order
}

/// One error per strongly connected component that holds a cycle (or per self-loop).
fn cycle_errors(graph: &StableDiGraph<ResourceDecl, EdgeInfo>) -> Vec<GraphError> {
    let mut errors = Vec::new();
    for mut scc in tarjan_scc(graph) {
        scc.sort();
        let start = scc[0];
        let cyclic = scc.len() > 1 || graph.find_edge(start, start).is_some();
        if !cyclic {
            continue;
        }
        let path = shortest_cycle(graph, start, &scc);
        errors.push(cycle_error(graph, &path));
    }
    errors
}

/// The shortest cycle through `start` staying inside its component: `start, …, last` where
/// `last → start` is an edge.
fn shortest_cycle(
    graph: &StableDiGraph<ResourceDecl, EdgeInfo>,
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

fn cycle_error(graph: &StableDiGraph<ResourceDecl, EdgeInfo>, path: &[NodeIndex]) -> GraphError {
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
            Some(i) => chain.push_str(&format!("{} -> ", graph[*i].id())),
            None => chain.push_str(&format!("… ({} more) … -> ", path.len() - MAX_CYCLE_SHOWN)),
        }
    }
    chain.push_str(&graph[path[0]].id().to_string());
    let mut autos = Vec::new();
    for (k, &i) in path.iter().enumerate() {
        let next = path[(k + 1) % path.len()];
        if let Some(e) = graph.find_edge(i, next)
            && graph[e].auto
            && autos.len() < MAX_CYCLE_SHOWN
        {
            autos.push(format!("{} -> {}", graph[i].id(), graph[next].id()));
        }
    }
    let places: Vec<String> = shown
        .iter()
        .flatten()
        .map(|&i| format!("{} at {}", graph[i].id(), graph[i].loc))
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
        loc: graph[path[0]].loc.clone(),
        message,
    }
}
