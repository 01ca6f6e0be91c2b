use super::*;
use serde_json::json;

/// Real `terraform graph` output (1.11.4) of tests/fixtures/multihost: two agents on two
/// hosts, a host reached through a local, an agent + host pair with for_each inside a
/// child module.
const SIMPLE_DOT: &str = include_str!("../../../tests/fixtures/multihost/graph.dot");
/// `terraform graph -type=plan` of the same module: the full graph with locals,
/// variables, outputs, module expansion and provider nodes.
const PLAN_DOT: &str = include_str!("../../../tests/fixtures/multihost/graph-plan.dot");

fn test_rules() -> Rules {
    Rules {
        agent_addresses: vec![
            "terraform_data.agent_main".into(),
            "terraform_data.agent_db".into(),
            "module.dev.terraform_data.agent_dev".into(),
        ],
        ..Rules::default()
    }
}

#[test]
fn parses_both_graph_forms() {
    for dot in [SIMPLE_DOT, PLAN_DOT] {
        let g = Graph::parse(dot).unwrap();
        assert!(
            g.resources.contains("module.dev.terraform_data.box"),
            "{g:?}"
        );
        assert!(g.resources.contains("terraform_data.vm"));
        assert!(!g.resources.iter().any(|r| r.contains("provider")), "{g:?}");
        assert!(g.edges.contains(&(
            "terraform_data.disk_attach".into(),
            "terraform_data.vm".into()
        )));
    }
    let plan = Graph::parse(PLAN_DOT).unwrap();
    assert!(plan.others.contains("local.main_init"), "{:?}", plan.others);
    assert!(
        plan.others.contains("module.dev.var.vols"),
        "{:?}",
        plan.others
    );
    assert!(Graph::parse("not dot").is_err());
}

#[test]
fn hosts_are_the_same_through_locals_in_either_graph() {
    for dot in [SIMPLE_DOT, PLAN_DOT] {
        let hosts = agent_hosts(&Graph::parse(dot).unwrap(), &test_rules());
        let get = |a: &str| hosts[a].as_deref();
        assert_eq!(get("terraform_data.agent_main"), Some("terraform_data.vm"));
        assert_eq!(
            get("terraform_data.agent_db"),
            Some("terraform_data.db_host")
        );
        assert_eq!(
            get("module.dev.terraform_data.agent_dev"),
            Some("module.dev.terraform_data.box")
        );
    }
}

#[test]
fn nearest_host_wins_and_ties_go_to_smallest_address() {
    let dot = r#"digraph {
  "hangar_agent.a" [label="hangar_agent.a"];
  "b_vm.z" -> "hangar_agent.a";
  "a_vm.y" -> "hangar_agent.a";
  "hangar_app.code" -> "hangar_agent.a";
  "data.cloudinit_config.c" -> "hangar_agent.a";
  "far.x" -> "data.cloudinit_config.c";
  "hangar_agent.b" [label="hangar_agent.b"];
  "data.cloudinit_config.d" -> "hangar_agent.b";
  "vm.only" -> "data.cloudinit_config.d";
  "hangar_agent.c" [label="hangar_agent.c"];
  "hangar_external_agent.e" -> "hangar_agent.c";
}"#;
    let hosts = agent_hosts(&Graph::parse(dot).unwrap(), &Rules::default());
    assert_eq!(hosts["hangar_agent.a"].as_deref(), Some("a_vm.y"));
    // Through a data source (not managed) to the resource that uses it.
    assert_eq!(hosts["hangar_agent.b"].as_deref(), Some("vm.only"));
    assert_eq!(hosts["hangar_agent.c"], None);
}

#[test]
fn strips_instance_keys() {
    assert_eq!(
        strip_keys(r#"module.m["a.b]"].terraform_data.z[0]"#),
        "module.m.terraform_data.z"
    );
    assert_eq!(strip_keys(r#"x.y["k\"]"]"#), "x.y");
    assert_eq!(
        ConfigAddress::parse("module.m.data.t.n").unwrap().mode,
        Mode::Data
    );
    assert!(ConfigAddress::parse("module.m.var.v").is_none());
    assert!(ConfigAddress::parse("local.x").is_none());
    assert!(ConfigAddress::parse("module.m").is_none());
}

fn hangar_state() -> Vec<u8> {
    json!({
          "version": 4, "serial": 3, "lineage": "l", "outputs": {},
          "resources": [
            {"mode": "data", "type": "hangar_workspace", "name": "me", "instances": [
              {"attributes": {"id": "w", "start_count": 1}, "sensitive_attributes": []}]},
            {"mode": "managed", "type": "hangar_agent", "name": "main", "instances": [
              {"attributes": {"id": "agent-1", "token": "tok-secret", "os": "linux", "arch": "amd64"},
               "sensitive_attributes": [[{"type": "get_attr", "value": "token"}]]}]},
            {"mode": "managed", "type": "hangar_agent", "name": "ext", "instances": [
              {"attributes": {"id": "agent-2", "token": "tok-2", "os": "linux", "arch": "arm64"},
               "sensitive_attributes": [[{"type": "get_attr", "value": "token"}]]}]},
            {"mode": "managed", "type": "hangar_external_agent", "name": "laptop", "instances": [
              {"attributes": {"id": "x", "agent_id": "agent-2"}, "sensitive_attributes": []}]},
            {"mode": "managed", "type": "docker_container", "name": "ws", "instances": [
              {"index_key": 0, "attributes": {"id": "c-1", "env": ["A=1", "TOKEN=tok-secret"]},
               "sensitive_attributes": [[{"type": "get_attr", "value": "env"}, {"type": "index", "value": {"value": 1, "type": "number"}}]]}]},
            {"mode": "managed", "type": "docker_volume", "name": "home", "module": "module.disk[\"a\"]", "instances": [
              {"attributes": {"id": "v-1"}, "sensitive_attributes": []}]},
            {"mode": "managed", "type": "hangar_metadata", "name": "info", "instances": [
              {"attributes": {"resource_id": "c-1", "daily_cost": 7, "hide": false, "icon": "/icon/docker.svg",
                "item": [{"key": "image", "value": "ubuntu", "sensitive": false, "is_null": false},
                         {"key": "password", "value": "pw", "sensitive": true, "is_null": false}]},
               "sensitive_attributes": []}]},
            {"mode": "managed", "type": "local_file", "name": "ext_token", "instances": [
              {"attributes": {"id": "f-1"}, "sensitive_attributes": []}]},
            {"mode": "managed", "type": "hangar_app", "name": "code", "instances": [
              {"attributes": {"id": "app", "agent_id": "agent-1"}, "sensitive_attributes": []}]}
          ]
        })
        .to_string()
        .into_bytes()
}

#[test]
fn classifies_hangar_state_with_metadata_and_external_agents() {
    let state = parse_state(&hangar_state()).unwrap();
    let addrs: Vec<_> = state.iter().map(|r| r.address.as_str()).collect();
    assert!(addrs.contains(&"docker_container.ws[0]"), "{addrs:?}");
    assert!(
        addrs.contains(&r#"module.disk["a"].docker_volume.home"#),
        "{addrs:?}"
    );
    assert!(addrs.contains(&"data.hangar_workspace.me"), "{addrs:?}");

    let dot = r#"digraph G {
  "docker_container.ws" -> "hangar_agent.main";
  "hangar_metadata.info" -> "docker_container.ws";
  "hangar_external_agent.laptop" -> "hangar_agent.ext";
  "local_file.ext_token" -> "hangar_agent.ext";
  "module.disk.docker_volume.home" -> "data.hangar_workspace.me";
  "docker_container.ws" -> "module.disk.docker_volume.home";
}"#;
    let lifetimes = HashMap::from([
        ("docker_container.ws".to_string(), Lifetime::Ephemeral),
        (
            "module.disk.docker_volume.home".to_string(),
            Lifetime::Persistent,
        ),
    ]);
    let c = classify(&Graph::parse(dot).unwrap(), &state, &lifetimes);

    let names: Vec<_> = c.resources.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        names,
        [
            "docker_container.ws[0]",
            r#"module.disk["a"].docker_volume.home"#,
            "local_file.ext_token"
        ]
    );
    // It depends on the external agent, but external agents have no host here.
    assert_eq!(c.resources[2].kind, Kind::Peripheral);
    let ws = &c.resources[0];
    assert_eq!(
        (ws.kind, ws.lifetime),
        (Kind::Computational, Lifetime::Ephemeral)
    );
    assert_eq!(ws.attributes["env"], json!(["A=1", "***"]));
    assert_eq!(
        (ws.daily_cost, ws.icon.as_deref()),
        (7, Some("/icon/docker.svg"))
    );
    assert_eq!(
        ws.metadata,
        [
            MetadataItem {
                key: "image".into(),
                value: Some("ubuntu".into()),
                sensitive: false
            },
            MetadataItem {
                key: "password".into(),
                value: Some("***".into()),
                sensitive: true
            },
        ]
    );
    let home = &c.resources[1];
    assert_eq!(
        (home.kind, home.lifetime),
        (Kind::Peripheral, Lifetime::Persistent)
    );

    assert_eq!(c.agents.len(), 2);
    let main = &c.agents[0];
    assert_eq!(
        (
            main.name.as_str(),
            main.id.as_str(),
            main.token.as_str(),
            main.os.as_str(),
            main.arch.as_str()
        ),
        ("main", "agent-1", "tok-secret", "linux", "amd64")
    );
    assert_eq!(main.host.as_deref(), Some("docker_container.ws[0]"));
    assert!(!main.external);
    assert!(!format!("{main:?}").contains("tok-secret"));
    let ext = &c.agents[1];
    assert!(ext.external);
    assert_eq!(ext.host, None);

    let provider: Vec<_> = c
        .provider_resources
        .iter()
        .map(|r| r.type_.as_str())
        .collect();
    assert_eq!(
        provider,
        [
            "hangar_workspace",
            "hangar_external_agent",
            "hangar_metadata",
            "hangar_app"
        ]
    );
}

#[test]
fn stopped_hosts_and_deposed_objects() {
    let state = json!({"version": 4, "resources": [
        {"mode": "managed", "type": "hangar_agent", "name": "a", "instances": [
          {"attributes": {"id": "agent-1", "token": "t"}}]},
        {"mode": "managed", "type": "vm", "name": "v", "instances": [
          {"attributes": {"id": "new"}},
          {"deposed": "00ab", "attributes": {"id": "old"}}]}
    ]})
    .to_string();
    let resources = parse_state(state.as_bytes()).unwrap();
    let addrs: Vec<_> = resources.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addrs, ["hangar_agent.a", "vm.v", "vm.v (deposed 00ab)"]);
    let graph = Graph::parse(
        "digraph {\n \"vm.v\" -> \"hangar_agent.a\";\n \"vm.w\" -> \"hangar_agent.a\";\n}",
    )
    .unwrap();
    let c = classify(&graph, &resources, &HashMap::new());
    assert_eq!(c.agents[0].host.as_deref(), Some("vm.v"));
    // Its host config has no instance (a stopped workspace): no host.
    let only_agent = &resources[..1];
    let graph = Graph::parse("digraph {\n \"vm.v\" -> \"hangar_agent.a\";\n}").unwrap();
    let c = classify(&graph, only_agent, &HashMap::new());
    assert_eq!(c.agents[0].host, None);
}

#[test]
fn masks_sensitive_values_inside_dynamic_attributes() {
    let r = StateResource {
        address: "terraform_data.x".into(),
        config_address: "terraform_data.x".into(),
        module: None,
        mode: Mode::Managed,
        type_: "terraform_data".into(),
        name: "x".into(),
        index_key: None,
        attributes: json!({"input": {"value": {"ok": "fine", "pw": "hunter2"}, "type": ["object", {}]}}),
        sensitive_attributes: json!([[{"type": "get_attr", "value": "input"}, {"type": "get_attr", "value": "pw"}]]),
    };
    let masked = r.masked_attributes();
    assert_eq!(masked["input"]["value"], json!({"ok": "fine", "pw": "***"}));
}

#[test]
fn lifetimes_come_from_the_stop_plan() {
    let start = json!({"planned_values": {"root_module": {
            "resources": [{"address": "docker_container.ws[0]"}, {"address": "docker_volume.home"}],
            "child_modules": [{"resources": [{"address": "module.m.null_resource.n[\"k\"]"}]}]}}});
    let stop = json!({"planned_values": {"root_module": {
            "resources": [{"address": "docker_volume.home"}]}}});
    let l = lifetimes_from_plans(&start, &stop);
    assert_eq!(l["docker_container.ws"], Lifetime::Ephemeral);
    assert_eq!(l["docker_volume.home"], Lifetime::Persistent);
    assert_eq!(l["module.m.null_resource.n"], Lifetime::Ephemeral);

    let mut l = l;
    let after_stop = parse_state(
        json!({"version": 4, "resources": [
                {"mode": "managed", "type": "null_resource", "name": "n", "module": "module.m",
                 "instances": [{"index_key": "k", "attributes": {}}]}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    confirm_lifetimes(&mut l, &after_stop);
    assert_eq!(l["module.m.null_resource.n"], Lifetime::Persistent);
    assert_eq!(l["docker_volume.home"], Lifetime::Ephemeral);
}
