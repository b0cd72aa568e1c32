//! The `IpamDriver` half: a pool is a catalog network's subnet of one
//! family (PoolID `NAME/v4`), the gateway is the fleet's, and addresses come
//! from this host's blocks — or are the `--ip` asked for, under the
//! catalog's rules — reserved until CreateEndpoint records them.

use std::net::IpAddr;

use serde_json::{Value, json};

use linkherd_proto::model::bounds::echo;

use super::{
    Plugin, Reply,
    matching::{self, pool},
    shown,
    wire::{ADDRESS_TYPE, AddressRef, GATEWAY_TYPE, NETWORK_OPTION, RequestAddress, RequestPool},
};

/// `NAME/v4` or `NAME/v6`.
fn pool_id(network: &str, v6: bool) -> String {
    format!("{network}/{}", if v6 { "v6" } else { "v4" })
}

fn parse_pool_id(id: &str) -> Result<(&str, bool), String> {
    match id.rsplit_once('/') {
        Some((n, "v4")) => Ok((n, false)),
        Some((n, "v6")) => Ok((n, true)),
        _ => Err(format!("pool {} is not one of linkherd's", shown(id))),
    }
}

impl Plugin {
    pub(super) async fn request_pool(&self, r: RequestPool) -> Reply {
        let nets = self.ctx.host.catalog().networks().await;
        let name = r.options.get(NETWORK_OPTION).map(String::as_str);
        let net = matching::which(&nets, name, &r.pool, r.v6)?;
        let subnet = pool(net, r.v6)
            .map(|p| p.subnet)
            .ok_or_else(|| format!("{} has no subnet of that family in the fleet", net.name))?;
        // The whole subnet (as the source document gives it) restricts
        // nothing; anything narrower is the blocks' job.
        if !r.sub_pool.is_empty() && r.sub_pool.parse().ok() != Some(subnet) {
            return Err(format!(
                "--ip-range={} is not used by linkherd: containers get addresses from this \
                 host's blocks of {} (or the --ip asked for); leave --ip-range out",
                echo(&r.sub_pool),
                net.name
            ));
        }
        Ok(json!({
            "PoolID": pool_id(net.name.as_str(), r.v6),
            "Pool": subnet.to_string(),
            "Data": {},
        }))
    }

    pub(super) async fn request_address(&self, r: RequestAddress) -> Reply {
        let (name, v6) = parse_pool_id(&r.pool_id)?;
        let net = self
            .ctx
            .host
            .catalog()
            .network(name)
            .await
            .ok_or_else(|| matching::unknown(name))?;
        let prefix = pool(&net, v6).map(|p| p.subnet.prefix_len()).unwrap_or(0);
        if r.options.get(ADDRESS_TYPE).map(String::as_str) == Some(GATEWAY_TYPE) {
            let gw = matching::gateway(&net, v6, &r.address)?;
            return Ok(json!({ "Address": format!("{gw}/{prefix}") }));
        }
        let asked = match r.address.as_str() {
            "" => None,
            a => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| format!("--ip {} is not an address", shown(a)))?,
            ),
        };
        let lc = &self.ctx.host;
        let got = match lc.attachments().reserve_address(name, v6, asked).await {
            Ok(a) => a,
            // Refused (taken, or the blocks full): perhaps by an endpoint
            // whose container went while the agent was down.
            Err(e) if self.reap().await == 0 => return Err(e.to_string()),
            Err(_) => lc
                .attachments()
                .reserve_address(name, v6, asked)
                .await
                .map_err(|e| e.to_string())?,
        };
        Ok(json!({ "Address": got.to_string() }))
    }

    /// The gateway and unrecorded reservations; a recorded address goes
    /// with its endpoint (DeleteEndpoint comes first).
    pub(super) async fn release_address(&self, r: AddressRef) -> Reply {
        let (name, _) = parse_pool_id(&r.pool_id)?;
        if let Ok(a) = r.address.parse::<IpAddr>() {
            let freed = self.ctx.host.attachments().release_address(name, a).await;
            tracing::debug!(network = name, address = %a, ?freed, "ReleaseAddress");
        }
        Ok(Value::Object(Default::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ids_name_the_network_and_family() {
        assert_eq!(pool_id("mac_net10", false), "mac_net10/v4");
        assert_eq!(parse_pool_id("mac_net10/v6"), Ok(("mac_net10", true)));
        assert_eq!(
            parse_pool_id("LocalDefault/172.17.0.0/16"),
            Err("pool \"LocalDefault/172.17.0.0/16\" is not one of linkherd's".to_owned())
        );
    }
}
