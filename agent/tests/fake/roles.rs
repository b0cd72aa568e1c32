//! T1: every RPC of the API, found in the compiled service descriptors,
//! called with no certificate and as viewer, operator and admin: each is
//! refused exactly below its role in `auth::required_role` and reaches its
//! handler from that role up — so no new RPC can ship unguarded (issue 11,
//! "one table maps every RPC to its minimum role").

use std::sync::Arc;

use linkherd_agent::testing::{Pki, start_agent};
use linkherd_agent::{app::services::required_role, net::fake::FakeKernel};
use linkherd_proto::model::Role;
use prost::Message;
use tonic::{Code, codegen::http::uri::PathAndQuery, transport::Channel};
use tonic_prost::ProstCodec;

/// (path, server-streaming) of every linkherd.v1 RPC.
fn rpcs() -> Vec<(String, bool)> {
    let fds = prost_types::FileDescriptorSet::decode(linkherd_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    fds.file
        .iter()
        .filter(|f| f.package() == "linkherd.v1")
        .flat_map(|f| f.service.iter())
        .flat_map(|s| {
            s.method.iter().map(move |m| {
                (
                    format!("/linkherd.v1.{}/{}", s.name(), m.name()),
                    m.server_streaming(),
                )
            })
        })
        .collect()
}

/// Calls `path` with an empty request (valid for every proto3 message) and
/// returns the status code it ends with (Ok for a success).
async fn call(ch: &Channel, path: &str, streaming: bool) -> Code {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    if grpc.ready().await.is_err() {
        return Code::Unavailable;
    }
    let path = PathAndQuery::try_from(path.to_owned()).expect("path");
    let codec = ProstCodec::<(), ()>::default();
    let req = tonic::Request::new(());
    if streaming {
        match grpc.server_streaming(req, path, codec).await {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        }
    } else {
        match grpc.unary(req, path, codec).await {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        }
    }
}

#[tokio::test]
async fn every_rpc_is_refused_below_its_role_and_served_from_it() {
    let fake = Arc::new(FakeKernel::new());
    fake.add_veth("ens192", "peer0").expect("nic");
    let pki = Pki::new();
    let agent = start_agent(fake, &pki, None).await;
    let all = rpcs();
    assert!(all.len() >= 24, "only {} RPCs found", all.len());
    let mut checked = 0;
    for role in Role::ALL {
        let ch = agent.channel(&pki, Some(role)).await.expect("connect");
        for (path, streaming) in &all {
            let code = call(&ch, path, *streaming).await;
            if role < required_role(path) {
                assert_eq!(code, Code::PermissionDenied, "{role} calling {path}");
            } else {
                assert!(
                    !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                    "{role} calling {path} got {code:?}"
                );
            }
            checked += 1;
        }
    }
    // Without a client certificate nothing gets through: the TLS handshake
    // or the call is refused.
    match agent.channel(&pki, None).await {
        Err(_) => {}
        Ok(ch) => {
            for (path, streaming) in &all {
                let code = call(&ch, path, *streaming).await;
                assert!(
                    matches!(
                        code,
                        Code::Unauthenticated | Code::Unavailable | Code::Unknown
                    ),
                    "no certificate calling {path} got {code:?}"
                );
            }
        }
    }
    assert_eq!(checked, all.len() * 3);
}
