//! What a build made: every resource instance in the state, labeled computational or
//! peripheral (from `terraform graph`) and persistent or ephemeral (from the start/stop
//! dry-run plans of the template version), plus the agents and where they run.
//!
//! A resource hosts an agent when it is the nearest managed, non-Hangar resource that
//! depends on the agent (the VM whose user data holds the agent's init script). Ties go
//! to the smallest address so the answer never depends on graph order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::model::resource::{Kind, Lifetime};

/// Types served by Hangar's provider (and its Coder alias): never hosts, never shown as
/// workspace resources of their own.
const PROVIDER_PREFIXES: &[&str] = &["hangar_", "coder_"];

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("terraform graph output is not DOT: {0}")]
    Graph(String),
    #[error("the terraform state is not valid JSON state (version 4): {0}")]
    State(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Managed,
    Data,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Managed => "managed",
            Mode::Data => "data",
        }
    }
}

/// A resource's address in the configuration: no instance keys, e.g.
/// `module.dev.terraform_data.box` for `module.dev["a"].terraform_data.box[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigAddress {
    pub module: Vec<String>,
    pub mode: Mode,
    pub type_: String,
    pub name: String,
}

/// First words that make a graph node something other than a resource.
const NOT_RESOURCE_TYPES: &[&str] = &[
    "var",
    "local",
    "output",
    "path",
    "terraform",
    "count",
    "each",
    "self",
    "provider",
    "check",
    "ephemeral",
    "meta",
    "root",
];

impl ConfigAddress {
    /// Parses `[module.NAME.]*[data.]TYPE.NAME`; anything else (variables, locals,
    /// outputs, module calls) is `None`.
    pub fn parse(s: &str) -> Option<ConfigAddress> {
        let parts: Vec<&str> = s.split('.').collect();
        let mut i = 0;
        let mut module = Vec::new();
        while i + 1 < parts.len() && parts[i] == "module" {
            module.push(parts[i + 1].to_string());
            i += 2;
        }
        let mode = if parts.get(i) == Some(&"data") {
            i += 1;
            Mode::Data
        } else {
            Mode::Managed
        };
        if parts.len() != i + 2 {
            return None;
        }
        let (type_, name) = (parts[i], parts[i + 1]);
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !ident(type_) || !ident(name) || NOT_RESOURCE_TYPES.contains(&type_) {
            return None;
        }
        Some(ConfigAddress {
            module,
            mode,
            type_: type_.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for ConfigAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.module {
            write!(f, "module.{m}.")?;
        }
        if self.mode == Mode::Data {
            f.write_str("data.")?;
        }
        write!(f, "{}.{}", self.type_, self.name)
    }
}

/// Removes instance keys: `module.m["a"].x.y[0]` → `module.m.x.y`.
pub fn strip_keys(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    for c in address.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '"' if depth > 0 => in_string = true,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The dependency graph between resources. Edges point from a node to what it depends
/// on, as terraform prints them. Non-resource nodes of the full plan graph (variables,
/// locals, outputs, module calls) are kept so a walk can pass through them; provider,
/// meta and root nodes are dropped (everything depends on its provider, which says
/// nothing about hosting).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    pub resources: BTreeSet<String>,
    pub others: BTreeSet<String>,
    pub edges: BTreeSet<(String, String)>,
}

impl Graph {
    /// Parses `terraform graph` DOT: the resource-only graph of Terraform ≥ 1.7 and the
    /// full graph (`-type=plan`, older Terraform, OpenTofu) with its `[root] ` prefixes
    /// and ` (expand)`/` (close)` suffixes.
    pub fn parse(dot: &str) -> Result<Graph, ClassifyError> {
        if !dot.trim_start().starts_with("digraph") {
            return Err(ClassifyError::Graph(format!(
                "expected it to start with `digraph`, got {:?}",
                dot.chars().take(40).collect::<String>()
            )));
        }
        let mut graph = Graph::default();
        for line in dot.lines() {
            let line = line.trim();
            if !line.starts_with('"') {
                continue; // attributes, subgraph headers, braces
            }
            let strings = quoted_strings(line);
            let is_edge = line.contains("\" -> \"");
            if is_edge && strings.len() >= 2 {
                let (from, to) = (normalize_node(&strings[0]), normalize_node(&strings[1]));
                if graph.keep(&from) && graph.keep(&to) {
                    graph.edges.insert((from, to));
                }
            } else if let Some(first) = strings.first() {
                let node = normalize_node(first);
                graph.keep(&node);
            }
        }
        Ok(graph)
    }

    /// Records a node; false for nodes that are dropped.
    fn keep(&mut self, node: &str) -> bool {
        if node == "root" || node.starts_with("provider[") || node.starts_with("meta.") {
            return false;
        }
        if node.contains("provider[") {
            // Module-scoped provider nodes: `module.x.provider["…"]`.
            return false;
        }
        if ConfigAddress::parse(node).is_some() {
            self.resources.insert(node.to_string());
        } else {
            self.others.insert(node.to_string());
        }
        true
    }

    /// Nodes that depend on `node` directly.
    pub fn dependents(&self, node: &str) -> Vec<&str> {
        self.edges
            .iter()
            .filter(|(_, to)| to == node)
            .map(|(from, _)| from.as_str())
            .collect()
    }
}

fn normalize_node(raw: &str) -> String {
    let s = raw.strip_prefix("[root] ").unwrap_or(raw);
    let s = match s.rfind(" (") {
        Some(i) if s.ends_with(')') => &s[..i],
        _ => s,
    };
    s.trim().to_string()
}

/// The contents of each `"…"` in a DOT line, with `\"` and `\\` unescaped.
fn quoted_strings(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                }
                '"' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// One resource instance from a v4 state file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateResource {
    /// Full instance address: `module.m.terraform_data.z`, `terraform_data.y["k"]`.
    pub address: String,
    /// Without instance keys; what the graph and the plans' lifetimes are keyed by.
    pub config_address: String,
    pub module: Option<String>,
    pub mode: Mode,
    #[serde(rename = "type")]
    pub type_: String,
    pub name: String,
    pub index_key: Option<Value>,
    pub attributes: Value,
    /// Paths (terraform's `[{"type":"get_attr","value":"token"}]` form) of attributes
    /// whose values are sensitive.
    pub sensitive_attributes: Value,
}

impl StateResource {
    /// `attributes` with every sensitive value replaced by `"***"`.
    pub fn masked_attributes(&self) -> Value {
        let mut attrs = self.attributes.clone();
        if let Some(paths) = self.sensitive_attributes.as_array() {
            for path in paths {
                if let Some(steps) = path.as_array() {
                    mask_path(&mut attrs, steps);
                }
            }
        }
        attrs
    }

    fn is_provider_type(&self) -> bool {
        PROVIDER_PREFIXES.iter().any(|p| self.type_.starts_with(p))
    }

    pub fn attr_str(&self, name: &str) -> Option<String> {
        match &self.attributes[name] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

fn mask_path(value: &mut Value, steps: &[Value]) {
    let Some((step, rest)) = steps.split_first() else {
        *value = Value::String("***".into());
        return;
    };
    // Attributes of dynamic type (terraform_data's input/output) are stored wrapped as
    // {"value": …, "type": …}, while the sensitive path skips the wrapper.
    if let Value::Object(map) = value {
        if map.len() == 2 && map.contains_key("type") && map.contains_key("value") {
            let key_is_wrapper = step["type"] == "get_attr" && step["value"] == "value";
            if !key_is_wrapper {
                if let Some(inner) = map.get_mut("value") {
                    mask_path(inner, steps);
                }
                return;
            }
        }
    }
    let next = match (step["type"].as_str(), value) {
        (Some("get_attr"), Value::Object(map)) => {
            step["value"].as_str().and_then(|k| map.get_mut(k))
        }
        (Some("index"), Value::Array(items)) => step["value"]["value"]
            .as_u64()
            .and_then(|i| items.get_mut(i as usize)),
        (Some("index"), Value::Object(map)) => {
            step["value"]["value"].as_str().and_then(|k| map.get_mut(k))
        }
        _ => None,
    };
    if let Some(next) = next {
        mask_path(next, rest);
    }
}

/// Reads the resource instances of a v4 `terraform.tfstate`, in state order.
pub fn parse_state(bytes: &[u8]) -> Result<Vec<StateResource>, ClassifyError> {
    let state: Value =
        serde_json::from_slice(bytes).map_err(|e| ClassifyError::State(e.to_string()))?;
    if state["version"].as_u64() != Some(4) {
        return Err(ClassifyError::State(format!(
            "unsupported state version {}",
            state["version"]
        )));
    }
    let mut out = Vec::new();
    for r in state["resources"].as_array().into_iter().flatten() {
        let mode = match r["mode"].as_str() {
            Some("data") => Mode::Data,
            Some("managed") => Mode::Managed,
            // Ephemeral resources are never stored in state; anything else is unknown.
            _ => continue,
        };
        let type_ = r["type"].as_str().unwrap_or_default().to_string();
        let name = r["name"].as_str().unwrap_or_default().to_string();
        let module = r["module"].as_str().map(str::to_string);
        let mut base = String::new();
        if let Some(m) = &module {
            base.push_str(m);
            base.push('.');
        }
        if mode == Mode::Data {
            base.push_str("data.");
        }
        base.push_str(&format!("{type_}.{name}"));
        for inst in r["instances"].as_array().into_iter().flatten() {
            let index_key = inst.get("index_key").cloned().filter(|k| !k.is_null());
            let mut address = match &index_key {
                Some(Value::String(k)) => format!("{base}[{}]", Value::String(k.clone())),
                Some(k) => format!("{base}[{k}]"),
                None => base.clone(),
            };
            // A create_before_destroy replacement that failed leaves the old object
            // "deposed" beside the new one: it still exists, under the same address.
            if let Some(deposed) = inst["deposed"].as_str() {
                address.push_str(&format!(" (deposed {deposed})"));
            }
            out.push(StateResource {
                config_address: strip_keys(&base),
                address,
                module: module.clone(),
                mode,
                type_: type_.clone(),
                name: name.clone(),
                index_key,
                attributes: inst["attributes"].clone(),
                sensitive_attributes: inst["sensitive_attributes"].clone(),
            });
        }
    }
    Ok(out)
}

/// One `item` of a `hangar_metadata` shown on its resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataItem {
    pub key: String,
    /// `***` for sensitive items; `None` for explicit nulls.
    pub value: Option<String>,
    pub sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifiedResource {
    pub address: String,
    pub config_address: String,
    pub mode: Mode,
    #[serde(rename = "type")]
    pub type_: String,
    pub name: String,
    pub kind: Kind,
    pub lifetime: Lifetime,
    /// Sensitive values masked.
    pub attributes: Value,
    pub hide: bool,
    pub icon: Option<String>,
    pub daily_cost: i64,
    pub metadata: Vec<MetadataItem>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub address: String,
    /// The resource name, suffixed with the instance key when the agent has several.
    pub name: String,
    pub id: String,
    /// The plain token; store only its hash.
    pub token: String,
    pub os: String,
    pub arch: String,
    /// Attached through `hangar_external_agent`: the compute is the user's.
    pub external: bool,
    /// The instance address of the resource that runs the agent (the config address
    /// when instances cannot be paired one to one).
    pub host: Option<String>,
}

impl fmt::Debug for AgentRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentRecord")
            .field("address", &self.address)
            .field("name", &self.name)
            .field("id", &self.id)
            .field("token", &"***")
            .field("os", &self.os)
            .field("arch", &self.arch)
            .field("external", &self.external)
            .field("host", &self.host)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// Managed resources that are not Hangar's own types (data sources are left out, as
    /// Coder does: they create nothing).
    pub resources: Vec<ClassifiedResource>,
    pub agents: Vec<AgentRecord>,
    /// Hangar-/Coder-typed instances other than agents (apps, scripts, env, metadata),
    /// for the caller to store.
    pub provider_resources: Vec<StateResource>,
}

/// Which resource types play which role. `Rules::default()` is Hangar's provider and its
/// Coder alias; tests may name extra agent addresses to stand in for `hangar_agent`.
#[derive(Debug, Clone)]
pub struct Rules {
    pub agent_types: Vec<String>,
    pub external_agent_types: Vec<String>,
    pub metadata_types: Vec<String>,
    /// Config addresses treated as agents whatever their type.
    pub agent_addresses: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        let both = |t: &str| vec![format!("hangar_{t}"), format!("coder_{t}")];
        Rules {
            agent_types: both("agent"),
            external_agent_types: both("external_agent"),
            metadata_types: both("metadata"),
            agent_addresses: Vec::new(),
        }
    }
}

impl Rules {
    fn is_agent(&self, config_address: &str) -> bool {
        self.agent_addresses.iter().any(|a| a == config_address)
            || ConfigAddress::parse(config_address)
                .is_some_and(|a| a.mode == Mode::Managed && self.agent_types.contains(&a.type_))
    }

    fn is_host_candidate(&self, config_address: &str) -> bool {
        let Some(a) = ConfigAddress::parse(config_address) else {
            return false;
        };
        a.mode == Mode::Managed
            && !PROVIDER_PREFIXES.iter().any(|p| a.type_.starts_with(p))
            && !self.is_agent(config_address)
    }
}

/// `classify_with` Hangar's default rules.
pub fn classify(
    graph: &Graph,
    state: &[StateResource],
    lifetimes: &HashMap<String, Lifetime>,
) -> Classified {
    classify_with(graph, state, lifetimes, &Rules::default())
}

/// The host (config address) of each agent config address: the nearest host candidate
/// among the nodes that depend on it, walking through anything else; ties by address.
pub fn agent_hosts(graph: &Graph, rules: &Rules) -> BTreeMap<String, Option<String>> {
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (from, to) in &graph.edges {
        dependents
            .entry(to.as_str())
            .or_default()
            .push(from.as_str());
    }
    let mut out = BTreeMap::new();
    for agent in graph.resources.iter().filter(|r| rules.is_agent(r)) {
        let mut seen: HashSet<&str> = HashSet::from([agent.as_str()]);
        let mut frontier: VecDeque<&str> = VecDeque::from([agent.as_str()]);
        let mut host = None;
        while !frontier.is_empty() && host.is_none() {
            let mut next = VecDeque::new();
            let mut found: Vec<&str> = Vec::new();
            for node in frontier {
                for &dep in dependents.get(node).map(Vec::as_slice).unwrap_or_default() {
                    if !seen.insert(dep) {
                        continue;
                    }
                    if rules.is_host_candidate(dep) {
                        found.push(dep);
                    } else {
                        next.push_back(dep);
                    }
                }
            }
            host = found.into_iter().min().map(str::to_string);
            frontier = next;
        }
        out.insert(agent.clone(), host);
    }
    out
}

/// Labels every resource instance of `state` and finds the agents.
pub fn classify_with(
    graph: &Graph,
    state: &[StateResource],
    lifetimes: &HashMap<String, Lifetime>,
    rules: &Rules,
) -> Classified {
    let hosts = agent_hosts(graph, rules);

    // External agents: by the id their hangar_external_agent names, and, where the state
    // holds no ids yet, by a direct graph edge from an external-agent resource.
    let mut external_ids: HashSet<String> = HashSet::new();
    let mut external_configs: HashSet<&str> = HashSet::new();
    for r in state {
        if rules.external_agent_types.contains(&r.type_) {
            if let Some(id) = r.attr_str("agent_id") {
                external_ids.insert(id);
            }
        }
    }
    for (from, to) in &graph.edges {
        let from_type = ConfigAddress::parse(from).map(|a| a.type_);
        if from_type.is_some_and(|t| rules.external_agent_types.contains(&t)) && rules.is_agent(to)
        {
            external_configs.insert(to.as_str());
        }
    }

    let instances_of = |config: &str| -> Vec<&StateResource> {
        state
            .iter()
            .filter(|r| r.config_address == config)
            .collect()
    };

    let mut agents = Vec::new();
    let mut agent_addresses: HashSet<&str> = HashSet::new();
    for r in state.iter().filter(|r| r.mode == Mode::Managed) {
        if !rules.is_agent(&r.config_address) {
            continue;
        }
        agent_addresses.insert(&r.address);
        let id = r.attr_str("id").unwrap_or_default();
        let external =
            external_ids.contains(&id) || external_configs.contains(r.config_address.as_str());
        let host = if external {
            None
        } else {
            hosts
                .get(&r.config_address)
                .cloned()
                .flatten()
                .and_then(|host_config| match instances_of(&host_config).as_slice() {
                    // The host has no instance now (count = 0): nothing runs the agent.
                    [] => None,
                    [only] => Some(only.address.clone()),
                    many => Some(
                        many.iter()
                            .find(|h| h.index_key.is_some() && h.index_key == r.index_key)
                            .map(|h| h.address.clone())
                            .unwrap_or(host_config),
                    ),
                })
        };
        let siblings = instances_of(&r.config_address).len();
        let name = match (&r.index_key, siblings) {
            (Some(Value::String(k)), n) if n > 1 => format!("{}-{k}", r.name),
            (Some(k), n) if n > 1 => format!("{}-{k}", r.name),
            _ => r.name.clone(),
        };
        agents.push(AgentRecord {
            address: r.address.clone(),
            name,
            id,
            token: r.attr_str("token").unwrap_or_default(),
            os: r.attr_str("os").unwrap_or_default(),
            arch: r.attr_str("arch").unwrap_or_default(),
            external,
            host,
        });
    }

    // An external agent runs on the user's machine: whatever depends on it hosts nothing.
    let external_agent_configs: HashSet<&str> = state
        .iter()
        .filter(|r| agent_addresses.contains(r.address.as_str()))
        .filter(|r| {
            external_configs.contains(r.config_address.as_str())
                || r.attr_str("id")
                    .is_some_and(|id| external_ids.contains(&id))
        })
        .map(|r| r.config_address.as_str())
        .collect();
    let host_configs: HashSet<&str> = hosts
        .iter()
        .filter(|(agent, _)| !external_agent_configs.contains(agent.as_str()))
        .filter_map(|(_, host)| host.as_deref())
        .collect();

    // Metadata by the id of the resource it describes; without a `resource_id` that
    // matches (as in Coder), by the nearest resource it depends on: keyed by instance
    // address.
    let ids: HashSet<String> = state
        .iter()
        .filter(|r| !rules.metadata_types.contains(&r.type_))
        .filter_map(|r| r.attr_str("id"))
        .collect();
    let mut metadata: HashMap<String, Vec<&StateResource>> = HashMap::new();
    let mut metadata_by_address: HashMap<String, Vec<&StateResource>> = HashMap::new();
    for r in state {
        if !rules.metadata_types.contains(&r.type_) {
            continue;
        }
        match r.attr_str("resource_id").filter(|id| ids.contains(id)) {
            Some(target) => metadata.entry(target).or_default().push(r),
            None => {
                let target = metadata::nearest_dependency(graph, &r.config_address, rules)
                    .and_then(|config| match instances_of(&config).as_slice() {
                        [] => None,
                        [only] => Some(only.address.clone()),
                        many => many
                            .iter()
                            .find(|t| t.index_key == r.index_key)
                            .or(many.first())
                            .map(|t| t.address.clone()),
                    });
                if let Some(address) = target {
                    metadata_by_address.entry(address).or_default().push(r);
                }
            }
        }
    }

    let mut resources = Vec::new();
    let mut provider_resources = Vec::new();
    for r in state {
        if r.is_provider_type() || agent_addresses.contains(r.address.as_str()) {
            if !agent_addresses.contains(r.address.as_str()) {
                provider_resources.push(r.clone());
            }
            continue;
        }
        if r.mode != Mode::Managed {
            continue;
        }
        let kind = if host_configs.contains(r.config_address.as_str()) {
            Kind::Computational
        } else {
            Kind::Peripheral
        };
        // Unknown to both dry-run plans (e.g. created by a parameter value the import did
        // not use): assume it persists rather than claim a stop will remove it.
        let lifetime = lifetimes
            .get(&r.config_address)
            .copied()
            .unwrap_or(Lifetime::Persistent);
        let mut resource = ClassifiedResource {
            address: r.address.clone(),
            config_address: r.config_address.clone(),
            mode: r.mode,
            type_: r.type_.clone(),
            name: r.name.clone(),
            kind,
            lifetime,
            attributes: r.masked_attributes(),
            hide: false,
            icon: None,
            daily_cost: 0,
            metadata: Vec::new(),
        };
        let id = r.attr_str("id");
        let by_id = id.and_then(|id| metadata.get(&id)).into_iter().flatten();
        for m in by_id.chain(metadata_by_address.get(&r.address).into_iter().flatten()) {
            metadata::apply(&mut resource, m);
        }
        resources.push(resource);
    }

    Classified {
        resources,
        agents,
        provider_resources,
    }
}

/// Config addresses a plan (`terraform show -json` of a saved plan) leaves in place:
/// everything in `planned_values`, through child modules.
pub fn planned_addresses(plan: &Value) -> BTreeSet<String> {
    fn walk(module: &Value, out: &mut BTreeSet<String>) {
        for r in module["resources"].as_array().into_iter().flatten() {
            if let Some(a) = r["address"].as_str() {
                out.insert(strip_keys(a));
            }
        }
        for child in module["child_modules"].as_array().into_iter().flatten() {
            walk(child, out);
        }
    }
    let mut out = BTreeSet::new();
    walk(&plan["planned_values"]["root_module"], &mut out);
    out
}

/// A resource the stop plan keeps is persistent; one only the start plan has is
/// ephemeral. Keyed by config address (no instance keys).
pub fn lifetimes_from_plans(start_plan: &Value, stop_plan: &Value) -> HashMap<String, Lifetime> {
    let stop = planned_addresses(stop_plan);
    let mut out: HashMap<String, Lifetime> = planned_addresses(start_plan)
        .into_iter()
        .map(|a| (a, Lifetime::Ephemeral))
        .collect();
    for a in stop {
        out.insert(a, Lifetime::Persistent);
    }
    out
}

/// After a successful stop build the real state is the truth: what it still holds is
/// persistent, and what the labels call persistent but is gone is ephemeral.
pub fn confirm_lifetimes(lifetimes: &mut HashMap<String, Lifetime>, after_stop: &[StateResource]) {
    let present: HashSet<&str> = after_stop
        .iter()
        .map(|r| r.config_address.as_str())
        .collect();
    for (address, lifetime) in lifetimes.iter_mut() {
        *lifetime = if present.contains(address.as_str()) {
            Lifetime::Persistent
        } else {
            Lifetime::Ephemeral
        };
    }
    for address in present {
        lifetimes
            .entry(address.to_string())
            .or_insert(Lifetime::Persistent);
    }
}

mod metadata;

#[cfg(test)]
mod tests;
