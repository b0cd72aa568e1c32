//! A throwaway fleet PKI for tests, laid out as `linkherdctl certs` lays
//! out its directory (`ca.pem`, `agent-NAME.pem`, `client-NAME.pem`, each
//! with a `-key.pem`), so suites and the real CLI read the same files.
//!
//! Written here with rcgen rather than through `linkherdctl`, so that the
//! agent's tests do not depend on the CLI crate. `linkherdctl`'s own tests
//! check its issuing against the agent.

use std::{net::IpAddr, path::PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// The roles the agent knows, as their certificates carry them.
pub const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

/// A CA in a temporary directory, with an agent certificate `agent` for
/// 127.0.0.1 and a client certificate per role, named after the role.
#[derive(Debug)]
pub struct Pki {
    pub dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "linkherd test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        valid_now(&mut params);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write ca.pem");
        std::fs::write(dir.path().join("ca-key.pem"), key.serialize_pem()).expect("write key");
        let issuer = Issuer::new(params, key);
        let pki = Self { dir, issuer };
        pki.issue_agent("agent", &["127.0.0.1".parse().expect("ip")]);
        for role in ROLES {
            pki.issue_client(role, Some(role));
        }
        pki
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).expect("read pem")
    }

    /// `agent-NAME.pem` (serverAuth) for NAME and `ips`.
    pub fn issue_agent(&self, name: &str, ips: &[IpAddr]) {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        self.sign(&format!("agent-{name}"), params);
    }

    /// `client-NAME.pem` (clientAuth, CN = NAME) with the role URI SAN, or
    /// without any role when `role` is `None`.
    pub fn issue_client(&self, name: &str, role: Option<&str>) {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(role) = role {
            let uri = format!("urn:linkherd:role:{role}");
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().expect("uri")));
        }
        self.sign(&format!("client-{name}"), params);
    }

    fn sign(&self, stem: &str, mut params: CertificateParams) {
        valid_now(&mut params);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        std::fs::write(self.path(&format!("{stem}.pem")), cert.pem()).expect("write cert");
        std::fs::write(self.path(&format!("{stem}-key.pem")), key.serialize_pem())
            .expect("write key");
    }
}

/// Valid from an hour ago (clocks a little behind) for 30 days.
fn valid_now(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(30);
}
