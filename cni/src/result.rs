//! ADD's result, in the version the configuration asked for: 0.4.0 tags
//! each address with its IP version, 1.0.0 and later do not.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Value, json};

use crate::version::CniVersion;

/// An interface the plugin made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceResult {
    pub name: String,
    pub mac: String,
    /// The container's namespace path.
    pub sandbox: String,
    pub mtu: Option<u32>,
}

/// An address on one of the interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpResult {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    /// Index into the result's interfaces.
    pub interface: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteResult {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
}

/// What ADD made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachResult {
    pub interfaces: Vec<IfaceResult>,
    pub ips: Vec<IpResult>,
    pub routes: Vec<RouteResult>,
}

impl AttachResult {
    pub fn to_json(&self, version: CniVersion) -> Value {
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut v = json!({"name": i.name, "mac": i.mac, "sandbox": i.sandbox});
                if let Some(mtu) = i.mtu.filter(|_| version >= CniVersion::V1_1_0) {
                    v["mtu"] = json!(mtu);
                }
                v
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|a| {
                let mut v = json!({"address": a.address.to_string(), "interface": a.interface});
                if let Some(g) = a.gateway {
                    v["gateway"] = json!(g.to_string());
                }
                if version == CniVersion::V0_4_0 {
                    v["version"] = json!(if a.address.addr().is_ipv4() { "4" } else { "6" });
                }
                v
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| match r.gw {
                Some(gw) => json!({"dst": r.dst.to_string(), "gw": gw.to_string()}),
                None => json!({"dst": r.dst.to_string()}),
            })
            .collect();
        json!({
            "cniVersion": version.as_str(),
            "interfaces": interfaces,
            "ips": ips,
            "routes": routes,
            "dns": {},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AttachResult {
        AttachResult {
            interfaces: vec![IfaceResult {
                name: "eth0".into(),
                mac: "02:42:ac:10:0a:0a".into(),
                sandbox: "/run/netns/cni-1".into(),
                mtu: Some(1500),
            }],
            ips: vec![IpResult {
                address: "172.16.10.10/24".parse().expect("net"),
                gateway: Some("172.16.10.1".parse().expect("ip")),
                interface: 0,
            }],
            routes: vec![RouteResult {
                dst: "0.0.0.0/0".parse().expect("net"),
                gw: Some("172.16.10.1".parse().expect("ip")),
            }],
        }
    }

    #[test]
    fn a_result_is_written_in_the_asked_version() {
        let v1 = sample().to_json(CniVersion::V1_0_0);
        assert_eq!(
            v1,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "mac": "02:42:ac:10:0a:0a", "sandbox": "/run/netns/cni-1"}],
                "ips": [{"address": "172.16.10.10/24", "gateway": "172.16.10.1", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "172.16.10.1"}],
                "dns": {},
            })
        );
        let v04 = sample().to_json(CniVersion::V0_4_0);
        assert_eq!(v04["ips"][0]["version"], "4");
        let v11 = sample().to_json(CniVersion::V1_1_0);
        assert_eq!(v11["interfaces"][0]["mtu"], 1500);
    }
}
