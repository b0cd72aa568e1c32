//! Every JSON and YAML example in docs/cni.md is what it claims to be: CNI
//! configurations (single, in a network list, inside a Multus
//! NetworkAttachmentDefinition) that the plugin accepts, and a fleet spec
//! fragment that opens a network to containers.

use std::path::PathBuf;

use linkherd_cni::NetConf;
use linkherdctl::spec::FleetSpec;

/// The fenced blocks of `lang` in the document.
fn blocks(doc: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```").expect("closed block");
        out.push(body[..end].to_owned());
        rest = &body[end..];
    }
    out
}

/// A plugin's configuration out of a network list, as runtimes make it.
fn from_list(list: &serde_json::Value) -> Vec<Vec<u8>> {
    list["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p["cniVersion"] = list["cniVersion"].clone();
            p["name"] = list["name"].clone();
            p.to_string().into_bytes()
        })
        .collect()
}

#[test]
fn every_example_in_the_cni_guide_parses() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/cni.md");
    let doc = std::fs::read_to_string(&path).expect("docs/cni.md");
    let json = blocks(&doc, "json");
    assert_eq!(json.len(), 2, "the plain configuration and podman's list");
    let mut confs = Vec::new();
    for b in &json {
        let v: serde_json::Value = serde_json::from_str(b).expect("JSON example");
        if v.get("plugins").is_some() {
            confs.extend(from_list(&v));
        } else {
            confs.push(b.clone().into_bytes());
        }
    }
    let yaml = blocks(&doc, "yaml");
    assert_eq!(yaml.len(), 2, "the fleet fragment and Multus' definition");
    for y in &yaml {
        let v: serde_json::Value = serde_saphyr::from_str(y).expect("YAML example");
        if v["kind"] == "NetworkAttachmentDefinition" {
            let config = v["spec"]["config"].as_str().expect("spec.config");
            confs.push(config.as_bytes().to_vec());
        } else {
            let spec = format!(
                "hosts:\n  no1: {{address: \"https://a:1\", parent: ens192}}\n  no2: {{address: \"https://b:1\", parent: eth0}}\n{y}"
            );
            let s = FleetSpec::parse(&spec, "docs/cni.md").expect("fleet fragment");
            let c = s
                .networks
                .values()
                .next()
                .and_then(|n| n.containers.clone())
                .expect("containers");
            assert_eq!(c.hosts.iter().collect::<Vec<_>>(), ["no1", "no2"]);
        }
    }
    let networks: Vec<String> = confs
        .iter()
        .map(|c| {
            NetConf::parse(c)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(c)))
                .network
        })
        .collect();
    assert_eq!(networks, ["mac_net10", "mac_net10", "mac_net10"]);
}
