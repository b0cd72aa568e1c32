//! How calls reach the agent, and nothing about what they do: the gRPC
//! listeners ([`grpc`]) with mTLS ([`tls`]), the local socket ([`unix`]),
//! the auth layer ([`auth`]), the request-bytes budget ([`budget`]), the
//! cap on local connections ([`capped`]) and the loopback `/healthz`
//! ([`health_http`]). The app hands it routes and a role table.

pub mod auth;
pub mod budget;
pub mod capped;
pub mod count;
pub mod grpc;
pub mod health_http;
pub mod tls;
pub mod unix;
