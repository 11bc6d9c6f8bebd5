//! Fuzzes the whole pure pipeline on arbitrary text: parse → validate → render. It must never
//! panic, and whatever validates must render into valid object names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llp_spec::{Identity, Limits, Record, RecordId, RenderConfig, render, validate_record};

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else { return };
    let record = Record { data: Some(yaml.to_owned()), ..Record::default() };
    let Ok(deployment) = validate_record(&record, &Limits::default()) else { return };
    let id = RecordId::Int(1);
    let objects = render(&deployment, Identity { id: &id, owner: "fuzz" }, &RenderConfig::default());
    for service in &objects.services {
        let name = service.metadata.name.as_deref().unwrap_or_default();
        assert!(name.len() <= 63 && llp_spec::validate::is_dns_label(name), "{name}");
    }
});
