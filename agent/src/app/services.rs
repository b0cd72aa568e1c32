//! Every gRPC service the agent serves, listed once: its server type, its
//! handler, and the RPCs viewers and operators may call (every other RPC of
//! it needs admin). The routes, the health names and the auth layer's roles
//! all come from this one list, so adding a service is one line here (and
//! its handler in `api/`).

use std::sync::Arc;

use linkherd_proto::{
    model::Role,
    pb::{
        attachment_service_server::AttachmentServiceServer, host_service_server::HostServiceServer,
        interface_service_server::InterfaceServiceServer,
        macvlan_service_server::MacvlanServiceServer, network_service_server::NetworkServiceServer,
        probe_service_server::ProbeServiceServer, vlan_service_server::VlanServiceServer,
    },
};
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::{
    api::{AttachmentSvc, HostSvc, InterfaceSvc, MacvlanSvc, NetworkSvc, ProbeSvc, VlanSvc},
    context::Context,
};

/// Which of a service's RPCs a role below admin may call.
#[derive(Debug, Clone, Copy)]
pub enum Methods {
    None,
    All,
    Only(&'static [&'static str]),
}

impl Methods {
    fn contains(self, method: &str) -> bool {
        match self {
            Methods::None => false,
            Methods::All => true,
            Methods::Only(names) => names.contains(&method),
        }
    }
}

/// One served service: its full gRPC name and the roles of its RPCs.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub viewer: Methods,
    pub operator: Methods,
}

/// Lists each service once; makes [`SERVICES`] and [`add_services`].
macro_rules! services {
    ($($server:ident($svc:ident) { viewer: $viewer:expr, operator: $operator:expr $(,)? }),+ $(,)?) => {
        /// Every linkherd service the agent serves, in route order.
        pub const SERVICES: &[Service] = &[$(Service {
            name: <$server<$svc> as NamedService>::NAME,
            viewer: $viewer,
            operator: $operator,
        }),+];

        /// Adds every service of [`SERVICES`] to `routes`, each handler
        /// over `ctx`, each refusing messages over `max` bytes.
        pub fn add_services(mut routes: Routes, ctx: &Arc<Context>, max: usize) -> Routes {
            $(routes = routes.add_service(
                $server::new($svc::new(ctx.clone())).max_decoding_message_size(max),
            );)+
            routes
        }
    };
}

services! {
    HostServiceServer(HostSvc) {
        viewer: Methods::Only(&[
            "GetInfo",
            "GetState",
            "Plan",
            "GetConvergence",
            "WatchConvergence",
        ]),
        operator: Methods::None,
    },
    InterfaceServiceServer(InterfaceSvc) {
        viewer: Methods::Only(&["List", "Get", "Watch"]),
        operator: Methods::None,
    },
    VlanServiceServer(VlanSvc) {
        viewer: Methods::Only(&["List"]),
        operator: Methods::None,
    },
    MacvlanServiceServer(MacvlanSvc) {
        viewer: Methods::Only(&["List", "ListHostAccess"]),
        operator: Methods::None,
    },
    ProbeServiceServer(ProbeSvc) {
        viewer: Methods::None,
        operator: Methods::All,
    },
    NetworkServiceServer(NetworkSvc) {
        viewer: Methods::Only(&["List", "Get"]),
        operator: Methods::None,
    },
    AttachmentServiceServer(AttachmentSvc) {
        viewer: Methods::Only(&["Check", "List", "Status"]),
        operator: Methods::None,
    },
}

/// Services every role may call whole: health and reflection.
const OPEN_TO_VIEWERS: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The role an RPC needs, by its gRPC path `/package.Service/Method`.
/// Unknown services and methods need admin: a new mutation is denied to
/// viewers until someone decides otherwise in [`SERVICES`].
pub fn required_role(path: &str) -> Role {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or_default();
    if OPEN_TO_VIEWERS.contains(&service) {
        return Role::Viewer;
    }
    match SERVICES.iter().find(|s| s.name == service) {
        Some(s) if s.viewer.contains(method) => Role::Viewer,
        Some(s) if s.operator.contains(method) => Role::Operator,
        _ => Role::Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every RPC in the API gets a deliberate role: reads for viewers,
    /// probes for operators, and every other method for admins only; every
    /// service of the API is served.
    #[test]
    fn every_rpc_in_the_api_has_the_intended_role() {
        let fds = prost_types::FileDescriptorSet::decode(linkherd_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut seen = 0;
        let mut services = Vec::new();
        for file in fds.file.iter().filter(|f| f.package() == "linkherd.v1") {
            for svc in &file.service {
                services.push(format!("linkherd.v1.{}", svc.name()));
                for m in &svc.method {
                    let path = format!("/linkherd.v1.{}/{}", svc.name(), m.name());
                    let read = [
                        "List",
                        "Get",
                        "Watch",
                        "GetInfo",
                        "GetState",
                        "Plan",
                        "ListHostAccess",
                        "Check",
                        "Status",
                        "GetConvergence",
                        "WatchConvergence",
                    ]
                    .contains(&m.name());
                    let expected = if svc.name() == "ProbeService" {
                        Role::Operator
                    } else if read {
                        Role::Viewer
                    } else {
                        Role::Admin
                    };
                    assert_eq!(required_role(&path), expected, "{path}");
                    seen += 1;
                }
            }
        }
        assert!(seen >= 20, "only {seen} RPCs found");
        services.sort();
        let mut served: Vec<String> = SERVICES.iter().map(|s| s.name.to_owned()).collect();
        served.sort();
        assert_eq!(served, services);
        assert_eq!(required_role("/grpc.health.v1.Health/Check"), Role::Viewer);
        assert_eq!(
            required_role("/linkherd.v1.NewService/Anything"),
            Role::Admin
        );
        assert_eq!(required_role("garbage"), Role::Admin);
    }
}
