//! The rules of SPEC section 3, one row each: a spec, and the field path and rule it must
//! produce (or that it is valid). Fixtures read like the YAML users write.

use llp_spec::{Limits, LimitsTable, Record, Rule, Spec, validate_record, validate_yaml};

/// A one-container spec with `extra` lines added to the container.
fn container(extra: &str) -> String {
    let mut yaml = String::from("containers:\n  - name: web\n    image: nginx:latest\n");
    for line in extra.lines() {
        yaml.push_str(&format!("    {line}\n"));
    }
    yaml
}

fn problems_with(yaml: &str, limits: &Limits) -> Vec<(String, Rule, String)> {
    match validate_yaml(yaml, limits) {
        Ok(spec) => panic!("expected problems, got a valid spec: {spec:?}\n--- yaml:\n{yaml}"),
        Err(problems) => problems.into_iter().map(|p| (p.field, p.rule, p.message)).collect(),
    }
}

fn problems(yaml: &str) -> Vec<(String, Rule, String)> {
    problems_with(yaml, &Limits::default())
}

fn valid(yaml: &str) -> Spec {
    validate_yaml(yaml, &Limits::default()).unwrap_or_else(|p| panic!("expected valid, got {p:#?}\n--- yaml:\n{yaml}"))
}

/// Asserts that `yaml` produces a problem at `field` breaking `rule`.
#[track_caller]
fn assert_problem(yaml: &str, field: &str, rule: Rule) {
    let found = problems(yaml);
    assert!(
        found.iter().any(|(f, r, _)| f == field && *r == rule),
        "expected {rule:?} at `{field}`, got {found:#?}\n--- yaml:\n{yaml}"
    );
}

#[test]
fn every_invalid_spec_is_reported_at_its_field_with_its_rule() {
    let two = |a: &str, b: &str| format!("containers:\n  - name: a\n    image: x\n{a}  - name: b\n    image: x\n{b}");
    let many = (0..17)
        .map(|i| format!("  - {{name: c{i}, image: x}}\n"))
        .collect::<String>();
    let cases: Vec<(String, &str, Rule)> = vec![
        // the top level
        ("replicas: 1\n".into(), "containers", Rule::Required),
        ("containers: []\n".into(), "containers", Rule::OutOfRange),
        (format!("containers:\n{many}"), "containers", Rule::OutOfRange),
        ("containers: nginx\n".into(), "containers", Rule::WrongType),
        ("containers: [nginx]\n".into(), "containers[0]", Rule::WrongType),
        (container("") + "replicas: 17\n", "replicas", Rule::OutOfRange),
        (container("") + "replicas: -1\n", "replicas", Rule::OutOfRange),
        (container("") + "replicas: \"2\"\n", "replicas", Rule::WrongType),
        (container("replicas: 2") + "replicas: 3\n", "containers[0].replicas", Rule::Conflict),
        (container("replicas: 99"), "containers[0].replicas", Rule::OutOfRange),
        (container("") + "restartPolicy: Sometimes\n", "restartPolicy", Rule::InvalidFormat),
        (container("") + "restartPolicy: Never\nreplicas: 0\n", "replicas", Rule::OutOfRange),
        (container("user: 0"), "containers[0].user", Rule::OutOfRange),
        (container("fsUser: 0"), "containers[0].fsUser", Rule::OutOfRange),
        (container("") + "replica: 2\n", "replica", Rule::UnknownField),
        // container basics
        ("containers:\n  - image: nginx\n".into(), "containers[0].name", Rule::Required),
        ("containers:\n  - name: ../../etc\n    image: x\n".into(), "containers[0].name", Rule::InvalidFormat),
        ("containers:\n  - name: Web\n    image: x\n".into(), "containers[0].name", Rule::InvalidFormat),
        (format!("containers:\n  - name: {}\n    image: x\n", "a".repeat(64)), "containers[0].name", Rule::InvalidFormat),
        ("containers:\n  - name: web\n".into(), "containers[0].image", Rule::Required),
        ("containers:\n  - name: web\n    image: nginx latest\n".into(), "containers[0].image", Rule::InvalidFormat),
        ("containers:\n  - name: web\n    image: 5\n".into(), "containers[0].image", Rule::WrongType),
        (container("memroy: 2"), "containers[0].memroy", Rule::UnknownField),
        // resources
        (container("cpu: \"8\""), "containers[0].cpu", Rule::WrongType),
        (container("cpu: 2.5"), "containers[0].cpu", Rule::WrongType),
        (container("cpu: 0"), "containers[0].cpu", Rule::OutOfRange),
        (container("cpu: 33"), "containers[0].cpu", Rule::OutOfRange),
        (container("memory: -1"), "containers[0].memory", Rule::OutOfRange),
        (container("memory: 0.05"), "containers[0].memory", Rule::OutOfRange),
        (container("memory: 64.5"), "containers[0].memory", Rule::OutOfRange),
        (container("memory: 16Gi"), "containers[0].memory", Rule::WrongType),
        (container("gpu: nvidia.com/a100"), "containers[0].gpu", Rule::InvalidFormat),
        (container("gpu: 1"), "containers[0].gpu", Rule::WrongType),
        (container("gpu: nvidia.com/gpu\ngpuCount: 3"), "containers[0].gpuCount", Rule::OutOfRange),
        (container("gpu: nvidia.com/gpu\ngpuCount: 0"), "containers[0].gpuCount", Rule::OutOfRange),
        (container("gpuCount: 1"), "containers[0].gpuCount", Rule::Conflict),
        // ports
        (container("ports: [{name: http, port: 70000}]"), "containers[0].ports[0].port", Rule::OutOfRange),
        (container("ports: [{name: http, port: 0}]"), "containers[0].ports[0].port", Rule::OutOfRange),
        (container("ports: [{name: http, port: \"80\"}]"), "containers[0].ports[0].port", Rule::WrongType),
        (container("ports: [{name: http}]"), "containers[0].ports[0].port", Rule::Required),
        (container("ports: [{name: HTTP, port: 80}]"), "containers[0].ports[0].name", Rule::InvalidFormat),
        (container("ports: [{name: a-very-long-port-name, port: 80}]"), "containers[0].ports[0].name", Rule::InvalidFormat),
        (container("ports: [{name: http, port: 80}, {name: http, port: 81}]"), "containers[0].ports[1].name", Rule::Duplicate),
        (container("ports: [{name: http, port: 80, protocol: UDP}]"), "containers[0].ports[0].protocol", Rule::UnknownField),
        (container("ports: 80"), "containers[0].ports", Rule::WrongType),
        (two("    ports: [{name: http, port: 80}]\n", "    ports: [{name: web, port: 80}]\n"), "containers[1].ports[0].port", Rule::Duplicate),
        (
            "initContainers:\n  - {name: init, image: x, ports: [{name: a, port: 1}]}\ncontainers:\n  - {name: web, image: x}\n".into(),
            "initContainers[0].ports",
            Rule::Conflict,
        ),
        (
            "initContainers:\n  - {name: web, image: x}\ncontainers:\n  - {name: web, image: x}\n".into(),
            "containers[0].name",
            Rule::Duplicate,
        ),
        // command, args, environment
        (container("command: python train.py"), "containers[0].command", Rule::InvalidFormat),
        (container("command: 5"), "containers[0].command", Rule::WrongType),
        (container("args: [1, two]"), "containers[0].args[0]", Rule::WrongType),
        (container("args: run"), "containers[0].args", Rule::WrongType),
        (container("environment: [{value: x}]"), "containers[0].environment[0].name", Rule::Required),
        (container("environment: [{name: 1X, value: x}]"), "containers[0].environment[0].name", Rule::InvalidFormat),
        (container("environment: [{name: PORT, value: 8080}]"), "containers[0].environment[0].value", Rule::WrongType),
        (container("environment: [{name: A}]"), "containers[0].environment[0].value", Rule::Required),
        (container("environment: [{name: A, value: x, fromSecret: k}]"), "containers[0].environment[0]", Rule::Conflict),
        (container("environment: [{name: A, fromSecret: a/b}]"), "containers[0].environment[0].fromSecret", Rule::InvalidFormat),
        (container("environment: [{name: A, fromConfig: 3}]"), "containers[0].environment[0].fromConfig", Rule::WrongType),
        (container("environment: [{name: A, value: x}, {name: A, value: y}]"), "containers[0].environment[1].name", Rule::Duplicate),
        (container("environment: [{name: A, valeu: x}]"), "containers[0].environment[0].valeu", Rule::UnknownField),
        // users and groups
        (container("user: -1"), "containers[0].user", Rule::OutOfRange),
        (container("user: root"), "containers[0].user", Rule::WrongType),
        (container("group: 2147483648"), "containers[0].group", Rule::OutOfRange),
        (container("fsUser: 1.5"), "containers[0].fsUser", Rule::WrongType),
        (container("changeGroupOnMismatch: yes"), "containers[0].changeGroupOnMismatch", Rule::WrongType),
        (two("    fsGroup: 100\n", "    fsGroup: 200\n"), "containers[1].fsGroup", Rule::Conflict),
        (two("    fsUser: 100\n", "    fsUser: 200\n"), "containers[1].fsUser", Rule::Conflict),
        // mounts and volumes
        (container("volumeMounts: [{name: data, mountPath: /data}]"), "containers[0].volumeMounts[0].name", Rule::UnknownReference),
        (container("volumeMounts: [{name: data}]") + "volumes: [{name: data, size: 1Gi}]\n", "containers[0].volumeMounts[0].mountPath", Rule::Required),
        (container("volumeMounts: [{name: data, mountPath: data}]") + "volumes: [{name: data, size: 1Gi}]\n", "containers[0].volumeMounts[0].mountPath", Rule::InvalidFormat),
        (container("volumeMounts: [{name: data, mountPath: /a/../etc}]") + "volumes: [{name: data, size: 1Gi}]\n", "containers[0].volumeMounts[0].mountPath", Rule::InvalidFormat),
        (
            container("volumeMounts: [{name: a, mountPath: /d}, {name: b, mountPath: /d}]") + "volumes: [{name: a, size: 1Gi}, {name: b, size: 1Gi}]\n",
            "containers[0].volumeMounts[1].mountPath",
            Rule::Duplicate,
        ),
        (container("volumeMounts: [{name: d, mountPath: /d, type: ReadOnlyMany}]") + "volumes: [{name: d, size: 1Gi}]\n", "containers[0].volumeMounts[0].type", Rule::InvalidFormat),
        (container("volumeMounts: [{name: d, mountPath: /d, readOnly: \"true\"}]") + "volumes: [{name: d, size: 1Gi}]\n", "containers[0].volumeMounts[0].readOnly", Rule::WrongType),
        (container("volumeMounts: [{name: d, mountPath: /d, type: ReadWriteMany}]") + "volumes: [{name: d, emptyDir: {}}]\n", "containers[0].volumeMounts[0].type", Rule::Conflict),
        (
            two("    volumeMounts: [{name: d, mountPath: /d, type: ReadWriteMany}]\n", "    volumeMounts: [{name: d, mountPath: /d, type: ReadWriteOnce}]\n") + "volumes: [{name: d, size: 1Gi}]\n",
            "containers[1].volumeMounts[0].type",
            Rule::Conflict,
        ),
        (container("") + "volumes: [{name: My_Data, size: 1Gi}]\n", "volumes[0].name", Rule::InvalidFormat),
        (container("") + "volumes: [{name: d, size: 1Gi}, {name: d, size: 2Gi}]\n", "volumes[1].name", Rule::Duplicate),
        (container("") + "volumes: [{name: d}]\n", "volumes[0].size", Rule::Required),
        (container("") + "volumes: [{name: d, size: 1Gi, emptyDir: {}}]\n", "volumes[0]", Rule::Conflict),
        (container("") + "volumes: [{name: d, size: 1Ti}]\n", "volumes[0].size", Rule::InvalidFormat),
        (container("") + "volumes: [{name: d, size: 0Gi}]\n", "volumes[0].size", Rule::InvalidFormat),
        (container("") + "volumes: [{name: d, size: 1000Gi}]\n", "volumes[0].size", Rule::InvalidFormat),
        (container("") + "volumes: [{name: d, size: 1}]\n", "volumes[0].size", Rule::WrongType),
        (container("") + "volumes: [{name: d, emptyDir: {sizeLimit: 300}}]\n", "volumes[0].emptyDir.sizeLimit", Rule::OutOfRange),
        (container("") + "volumes: [{name: d, emptyDir: {medium: Disk}}]\n", "volumes[0].emptyDir.medium", Rule::UnknownField),
        // the YAML itself
        ("containers: [\n".into(), "data", Rule::Syntax),
        ("containers: []\n---\ncontainers: []\n".into(), "data", Rule::Syntax),
        ("".into(), "data", Rule::Required),
        ("- name: web\n".into(), "data", Rule::WrongType),
        ("just text".into(), "data", Rule::WrongType),
        (format!("containers: {}{}\n", "[".repeat(20), "]".repeat(20)), "data", Rule::Syntax),
        (format!("{}\n{}", container(""), "# padding\n".repeat(7000)), "data", Rule::Syntax),
    ];
    for (yaml, field, rule) in cases {
        assert_problem(&yaml, field, rule);
    }
}

#[test]
fn duplicate_container_names_are_reported_on_the_second() {
    let yaml = "containers:\n  - {name: web, image: x}\n  - {name: web, image: y}\n";
    assert_problem(yaml, "containers[1].name", Rule::Duplicate);
}

#[test]
fn an_alias_bomb_is_refused_quickly() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        yaml.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    yaml.push_str("containers: [{name: web, image: x}]\n");
    assert_problem(&yaml, "data", Rule::Syntax);
}

#[test]
fn aliases_of_a_long_text_are_refused_before_they_build_megabytes() {
    // 30 KB of text, aliased 900 times: 27 MB of strings if expanded (the parser's default
    // budget allows 64 MiB), from a 35 KB document.
    let long = "x".repeat(30 * 1024);
    let aliases = vec!["*a"; 900].join(", ");
    let yaml = format!("k: &a {long}\nv: [{aliases}]\n");
    let refused = llp_spec::parse::parse_yaml_value(&yaml, "body").unwrap_err();
    assert_eq!(refused.field, "body");
    assert!(
        refused
            .message
            .contains("too large once its anchors and aliases are expanded"),
        "{}",
        refused.message
    );
    assert_problem(
        &format!("{yaml}containers: [{{name: web, image: x}}]\n"),
        "data",
        Rule::Syntax,
    );
    // A long text used a few times, and a long document of its own text, are fine.
    let few = format!("k: &a {long}\nv: [*a, *a]\n");
    assert!(llp_spec::parse::parse_yaml_value(&few, "body").is_ok());
    let plain: String = (0..1500)
        .map(|i| format!("KEY_{i}: value number {i} of many\n"))
        .collect();
    assert!(plain.len() > 40 * 1024);
    assert!(llp_spec::parse::parse_yaml_value(&plain, "body").is_ok());
}

#[test]
fn a_ten_megabyte_document_is_refused_before_parsing() {
    let yaml = format!(
        "containers: [{{name: web, image: x}}]\n#{}\n",
        "x".repeat(10 * 1024 * 1024)
    );
    let found = problems(&yaml);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0.as_str(), found[0].1), ("data", Rule::Syntax));
    assert!(found[0].2.contains("64 KiB"), "{}", found[0].2);
}

#[test]
fn a_misspelled_key_suggests_the_right_one() {
    let found = problems(&container("memroy: 2"));
    assert!(found[0].2.contains("Did you mean `memory`?"), "{}", found[0].2);
    let found = problems(&(container("") + "replica: 2\n"));
    assert!(found[0].2.contains("Did you mean `replicas`?"), "{}", found[0].2);
}

#[test]
fn a_quoted_number_gets_a_hint_to_remove_the_quotes() {
    let found = problems(&container("cpu: \"8\""));
    assert_eq!(
        found[0].2,
        "must be a whole number of CPU cores from 1 to 32, not the text \"8\". Write the number without quotes."
    );
}

#[test]
fn range_messages_read_as_sentences() {
    let found = problems(&container("ports: [{name: http, port: 70000}]"));
    assert_eq!(found[0].2, "is 70000, but must be a whole port number from 1 to 65535.");
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = "containers:\n  - name: ../../etc\n    image: nginx\n    cpu: \"8\"\n    memory: -1\n    memroy: 2\n    ports: [{name: http, port: 70000}]\nreplicas: 17\n";
    let fields: Vec<String> = problems(yaml).into_iter().map(|(f, _, _)| f).collect();
    for field in [
        "containers[0].name",
        "containers[0].cpu",
        "containers[0].memory",
        "containers[0].memroy",
        "containers[0].ports[0].port",
        "replicas",
    ] {
        assert!(fields.iter().any(|f| f == field), "missing {field} in {fields:?}");
    }
}

#[test]
fn defaults_are_filled_in() {
    let spec = valid(&container("ports: [{port: 80}]\ngpu: nvidia.com/mig-1g.10gb"));
    let c = &spec.containers[0];
    assert_eq!((c.cpu, c.memory, spec.replicas), (4, 16.0, 1));
    assert_eq!(spec.restart_policy.as_str(), "Always");
    assert_eq!(c.ports[0].name, "port-80");
    assert_eq!(c.gpu.map(|g| g.gpu_count), Some(1));
}

#[test]
fn the_seeds_example_is_valid() {
    let spec = valid(include_str!("../../../examples/seed.yaml"));
    let c = &spec.containers[0];
    assert_eq!((c.cpu, c.memory), (8, 0.5));
    assert_eq!(c.command.as_deref(), Some(&["/bin/echo".to_owned()][..]));
    assert_eq!(spec.pod_security().fs_group, Some(1000));
    assert!(spec.pod_security().change_group_on_mismatch);
}

#[test]
fn valid_edge_cases_pass() {
    valid(&container("cpu: 32\nmemory: 64"));
    valid(&container("memory: 0.1"));
    valid(&(container("replicas: 16") + "replicas: 16\n"));
    valid(&(container("") + "replicas: 0\n"));
    valid(&(container("") + "volumes: [{name: unused, size: 999Mi}]\n"));
    valid(&(container("") + "volumes: [{name: scratch, emptyDir: {}}]\n"));
    valid(&container("command: [python, train.py]\nargs: [\"--lr\", \"0.1\"]"));
    valid(&container(
        "environment: [{name: KEY, fromSecret: api-key}, {name: CFG, fromConfig: cfg.json}]",
    ));
    valid(&(container("") + "restartPolicy: OnFailure\n"));
}

#[test]
fn a_persistent_mount_type_settles_the_volume_access_mode() {
    let spec = valid(
        &(container("volumeMounts: [{name: d, mountPath: /d, type: ReadWriteMany}]")
            + "volumes: [{name: d, size: 5Gi}]\n"),
    );
    assert_eq!(
        spec.volumes[0].kind,
        llp_spec::spec::VolumeKind::Persistent {
            size: "5Gi".into(),
            access: llp_spec::spec::AccessMode::ReadWriteMany
        }
    );
}

#[test]
fn a_group_with_larger_maxima_may_ask_for_more_but_not_beyond() {
    let management = LimitsTable::default().for_groups(&["management"]);
    validate_yaml(
        &container("cpu: 256\nmemory: 512\ngpu: nvidia.com/gpu\ngpuCount: 8"),
        &management,
    )
    .unwrap();
    let found = problems_with(&container("cpu: 257"), &management);
    assert_eq!(
        (found[0].0.as_str(), found[0].1),
        ("containers[0].cpu", Rule::OutOfRange)
    );
    assert_problem(&container("cpu: 256"), "containers[0].cpu", Rule::OutOfRange);
}

#[test]
fn a_gpu_kind_not_offered_to_the_user_names_the_ones_that_are() {
    let mig_only = Limits {
        gpus: vec![llp_spec::spec::Gpu::Mig1g10gb, llp_spec::spec::Gpu::Mig2g20gb].into(),
        ..Limits::default()
    };
    let found = problems_with(&container("gpu: nvidia.com/gpu"), &mig_only);
    assert_eq!(
        found,
        [(
            "containers[0].gpu".to_owned(),
            Rule::OutOfRange,
            "`nvidia.com/gpu` is not offered to you: choose one of `nvidia.com/mig-2g.20gb`, `nvidia.com/mig-1g.10gb`."
                .to_owned()
        )]
    );
    validate_yaml(&container("gpu: nvidia.com/mig-1g.10gb"), &mig_only).unwrap();
}

fn record(yaml: &str, service: Option<&str>, port: Option<i64>, hostname: Option<&str>) -> Record {
    Record {
        data: Some(yaml.to_owned()),
        exposed_service: service.map(str::to_owned),
        exposed_port: port.map(serde_json::Value::from),
        exposed_hostname: hostname.map(str::to_owned),
        ..Record::default()
    }
}

#[track_caller]
fn assert_record_problem(record: &Record, field: &str, rule: Rule) {
    let found = validate_record(record, &Limits::default()).expect_err("expected problems");
    assert!(
        found.iter().any(|p| p.field == field && p.rule == rule),
        "expected {rule:?} at {field}, got {found:#?}"
    );
}

#[test]
fn the_exposed_fields_must_point_into_the_yaml() {
    let yaml = container("ports: [{name: http, port: 80}]");
    let ok = validate_record(
        &record(&yaml, Some("web"), Some(80), Some("my-app")),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(ok.hostname(), Some("my-app"));

    assert_record_problem(
        &record(&yaml, Some("web"), Some(81), Some("my-app")),
        "exposed_port",
        Rule::UnknownReference,
    );
    assert_record_problem(
        &record(&yaml, Some("wbe"), Some(80), Some("my-app")),
        "exposed_service",
        Rule::UnknownReference,
    );
    assert_record_problem(
        &record(&yaml, None, None, Some("my-app")),
        "exposed_service",
        Rule::Required,
    );
    assert_record_problem(
        &record(&yaml, None, None, Some("my-app")),
        "exposed_port",
        Rule::Required,
    );
    assert_record_problem(
        &record(&yaml, Some("web"), Some(80), Some("My_App")),
        "exposed_hostname",
        Rule::InvalidFormat,
    );
    assert_record_problem(
        &record(&yaml, Some("web"), Some(70000), Some("my-app")),
        "exposed_port",
        Rule::OutOfRange,
    );
    assert_record_problem(&Record::default(), "data", Rule::Required);
    let mut quoted = record(&yaml, Some("web"), None, Some("my-app"));
    quoted.exposed_port = Some(serde_json::json!("80"));
    assert_record_problem(&quoted, "exposed_port", Rule::WrongType);
}

#[test]
fn numbers_in_messages_are_readable() {
    let found = problems(&container("memory: 1e-300"));
    assert!(found[0].2.contains("is 1e-300, but"), "{}", found[0].2);
    let found = problems(&container("memory: 100"));
    assert!(found[0].2.contains("is 100, but"), "{}", found[0].2);
}

#[test]
fn empty_exposed_fields_count_as_absent() {
    let yaml = container("");
    let deployment = validate_record(&record(&yaml, Some(""), None, Some("")), &Limits::default()).unwrap();
    assert_eq!(deployment.expose, None);
}

#[test]
fn record_and_yaml_problems_are_reported_together() {
    let found = validate_record(
        &record(&container("cpu: 99"), None, None, Some("Bad Host")),
        &Limits::default(),
    )
    .expect_err("invalid");
    let fields: Vec<&str> = found.iter().map(|p| p.field.as_str()).collect();
    assert!(
        fields.contains(&"containers[0].cpu") && fields.contains(&"exposed_hostname"),
        "{fields:?}"
    );
}

/// The message of the one problem at `field`.
#[track_caller]
fn message_at(yaml: &str, field: &str) -> String {
    let found = problems(yaml);
    found
        .iter()
        .find(|(f, _, _)| f == field)
        .unwrap_or_else(|| panic!("no problem at `{field}`: {found:#?}"))
        .2
        .clone()
}

#[test]
fn messages_a_student_can_follow() {
    // A booking's slug where the resource name belongs.
    let message = message_at(&container("gpu: gpu-xs"), "containers[0].gpu");
    assert!(message.contains("write `gpu: nvidia.com/mig-1g.10gb`"), "{message}");
    let message = message_at(&container("gpu: gpu-l"), "containers[0].gpu");
    assert!(message.contains("write `gpu: nvidia.com/gpu`"), "{message}");

    // A tab in the indentation: the tab's own line, and what to do.
    let tabbed = "containers:\n  - name: web\n\timage: nginx\n";
    let message = message_at(tabbed, "data");
    assert!(
        message.contains("line 3 is indented with a tab") && message.contains("spaces"),
        "{message}"
    );

    // A container's field at the top, a top-level field in a container.
    let misplaced = "containers:\n  - name: web\n    image: nginx\nports:\n  - {name: http, port: 80}\n";
    let message = message_at(misplaced, "ports");
    assert!(
        message.contains("belongs to a container: indent it under an entry of `containers`"),
        "{message}"
    );
    let message = message_at(
        &container("volumes: [{name: data, size: 1Gi}]"),
        "containers[0].volumes",
    );
    assert!(message.contains("belongs at the top of the YAML"), "{message}");
    // A key that is nobody's gets no such hint.
    let message = message_at(&container("colour: blue"), "containers[0].colour");
    assert!(!message.contains("belongs"), "{message}");
}
