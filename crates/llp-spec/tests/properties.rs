//! Properties that must hold for every input, not just the ones we thought of.

use llp_spec::names::label_value;
use llp_spec::{Identity, Limits, Names, Record, RecordId, RenderConfig, render, validate_record, validate_yaml};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A DNS-1035 label: a letter first, lowercase letters, digits and `-`, alphanumeric last, ≤ 63.
fn is_dns1035(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn record_id() -> impl Strategy<Value = RecordId> {
    prop_oneof![
        any::<i64>().prop_map(RecordId::Int),
        any::<String>().prop_map(RecordId::Text),
        "[a-zA-Z0-9_. /-]{0,120}".prop_map(RecordId::Text),
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".prop_map(RecordId::Text),
    ]
}

/// Container names that validation accepts.
fn container_name() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
}

proptest! {
    #[test]
    fn any_record_id_yields_valid_deterministic_names(id in record_id(), container in container_name()) {
        let names = Names::new("sd-", &id);
        for name in [names.base().to_owned(), names.service(&container), names.tls_secret()] {
            prop_assert!(is_dns1035(&name), "{name:?} from {id:?}");
        }
        prop_assert!(names.base().len() <= llp_spec::names::MAX_BASE_LEN);
        prop_assert_eq!(names.clone(), Names::new("sd-", &id));
        prop_assert!(is_label_value(&label_value(&id.to_string())));
    }

    #[test]
    fn distinct_ids_get_distinct_names(a in record_id(), b in record_id()) {
        prop_assume!(a.to_string() != b.to_string());
        prop_assert_ne!(Names::new("sd-", &a), Names::new("sd-", &b));
    }

    #[test]
    fn distinct_containers_get_distinct_services(a in container_name(), b in container_name(), id in record_id()) {
        prop_assume!(a != b);
        let names = Names::new("sd-", &id);
        prop_assert_ne!(names.service(&a), names.service(&b));
    }

    #[test]
    fn arbitrary_text_never_panics(yaml in any::<String>()) {
        let _ = validate_yaml(&yaml, &Limits::default());
    }

    #[test]
    fn rendering_a_validated_spec_never_panics_and_names_stay_valid(
        spec in spec_value(),
        id in record_id(),
        expose in (prop::option::of("[a-z]{1,6}"), prop::option::of(0i64..70000), prop::option::of("[a-z0-9-]{1,70}")),
    ) {
        let record = Record {
            data: Some(spec.to_string()),
            exposed_service: expose.0,
            exposed_port: expose.1.map(Value::from),
            exposed_hostname: expose.2,
            ..Record::default()
        };
        if let Ok(deployment) = validate_record(&record, &Limits::default()) {
            let objects = render(&deployment, Identity { id: &id, owner: "owner" }, &RenderConfig::default());
            let mut names = vec![objects.workload.name().to_owned()];
            names.extend(objects.services.iter().map(|s| s.metadata.name.clone().unwrap()));
            names.extend(objects.ingress.iter().map(|i| i.metadata.name.clone().unwrap()));
            for name in names {
                prop_assert!(is_dns1035(&name), "{name:?}");
            }
            prop_assert_eq!(objects.ingress.is_some(), deployment.hostname().is_some());
        }
    }
}

/// Deployment specs as JSON (which is YAML), mixing valid and invalid values so that both
/// paths are exercised.
fn spec_value() -> impl Strategy<Value = Value> {
    let container = (
        prop_oneof!["[a-z]{1,6}", "[a-z0-9-]{1,64}", Just("Web".to_owned())],
        prop::collection::vec((prop::option::of("[a-z]{1,8}"), -1i64..70000), 0..3),
        prop::option::of(-1i64..40),
        prop::option::of(prop_oneof![
            Just(json!(0.5)),
            Just(json!(16)),
            Just(json!(-1)),
            Just(json!("8"))
        ]),
        prop::option::of(prop_oneof![
            Just("nvidia.com/gpu"),
            Just("nvidia.com/mig-1g.10gb"),
            Just("x")
        ]),
        prop::option::of(0i64..4),
        prop::collection::vec(("[a-c]", prop_oneof![Just("/data"), Just("/x"), Just("rel")]), 0..3),
    )
        .prop_map(|(name, ports, cpu, memory, gpu, gpu_count, mounts)| {
            let mut c = json!({"name": name, "image": "nginx:latest"});
            c["ports"] = ports.into_iter().map(|(n, p)| json!({"name": n, "port": p})).collect();
            c["volumeMounts"] = mounts
                .into_iter()
                .map(|(n, p)| json!({"name": n, "mountPath": p}))
                .collect();
            for (key, value) in [
                ("cpu", cpu.map(Value::from)),
                ("memory", memory),
                ("gpu", gpu.map(Value::from)),
                ("gpuCount", gpu_count.map(Value::from)),
            ] {
                if let Some(value) = value {
                    c[key] = value;
                }
            }
            c
        });
    let volume = (
        "[a-c]",
        prop_oneof![
            Just(json!({"size": "1Gi"})),
            Just(json!({"emptyDir": {}})),
            Just(json!({"size": "0Gi"}))
        ],
    )
        .prop_map(|(name, mut kind)| {
            kind["name"] = json!(name);
            kind
        });
    (
        prop::collection::vec(container, 0..4),
        prop::collection::vec(volume, 0..3),
        prop::option::of(-1i64..20),
    )
        .prop_map(|(containers, volumes, replicas)| {
            let mut spec = json!({"containers": containers, "volumes": volumes});
            if let Some(r) = replicas {
                spec["replicas"] = json!(r);
            }
            spec
        })
}
