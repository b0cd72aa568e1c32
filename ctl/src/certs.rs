//! A small certificate authority for a linkherd fleet (rcgen).
//!
//! `init` creates the CA; `issue` creates agent certificates (serverAuth, with
//! the DNS names and IPs clients will dial) and client certificates
//! (clientAuth, CN = the client's name, role as URI SAN
//! `urn:linkherd:role:ROLE`, which the agent maps to a permission level).
//! Keys are ECDSA P-256 and written owner-readable only.

use std::{
    fs,
    io::Write,
    net::IpAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use linkherd_proto::model::Role;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} already exists; pass --force to replace it (every certificate it signed stops working)"
    )]
    Exists(PathBuf),
    #[error("no CA in {0}: run `linkherdctl certs init --dir {0}` first")]
    NoCa(PathBuf),
    #[error("invalid name {0:?}: use letters, digits, '.', '-' and '_' (it names the files)")]
    Name(String),
    #[error("invalid --san {0:?}: give an IP address or a DNS name")]
    San(String),
    #[error("--days must be between 1 and 3650, not {0}")]
    Days(u32),
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// The files one `issue` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_owned(),
        source,
    }
}

fn check_name(name: &str) -> Result<(), CertError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CertError::Name(name.to_owned()))
    }
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn validity(params: &mut CertificateParams, days: u32) -> Result<(), CertError> {
    if !(1..=3650).contains(&days) {
        return Err(CertError::Days(days));
    }
    let now = OffsetDateTime::now_utc();
    // Tolerate clocks that are a little behind.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days.into());
    Ok(())
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), CertError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))
}

/// Creates a CA in `dir` (`ca.pem`, `ca-key.pem`).
pub fn init(dir: &Path, days: u32, force: bool) -> Result<Issued, CertError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    if !force {
        for p in [&cert_path, &key_path] {
            if p.exists() {
                return Err(CertError::Exists(p.clone()));
            }
        }
    }
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "linkherd fleet CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, days)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_file(&key_path, &key.serialize_pem(), 0o600)?;
    write_file(&cert_path, &cert.pem(), 0o644)?;
    Ok(Issued {
        cert: cert_path,
        key: key_path,
    })
}

fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    if !cert_path.exists() || !key_path.exists() {
        return Err(CertError::NoCa(dir.to_owned()));
    }
    let cert_pem = fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
    let key_pem = fs::read_to_string(&key_path).map_err(io(&key_path))?;
    let key = KeyPair::from_pem(&key_pem)?;
    Ok(Issuer::from_ca_cert_pem(&cert_pem, key)?)
}

fn issue(
    dir: &Path,
    file_stem: &str,
    mut params: CertificateParams,
    days: u32,
) -> Result<Issued, CertError> {
    let issuer = load_issuer(dir)?;
    validity(&mut params, days)?;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let cert_path = dir.join(format!("{file_stem}.pem"));
    let key_path = dir.join(format!("{file_stem}-key.pem"));
    write_file(&key_path, &key.serialize_pem(), 0o600)?;
    write_file(&cert_path, &cert.pem(), 0o644)?;
    Ok(Issued {
        cert: cert_path,
        key: key_path,
    })
}

/// Issues `agent-NAME.pem` for an agent reachable as NAME and every `sans`
/// entry (IP addresses or DNS names).
pub fn issue_agent(
    dir: &Path,
    name: &str,
    sans: &[String],
    days: u32,
) -> Result<Issued, CertError> {
    check_name(name)?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut names = vec![name.to_owned()];
    names.extend(sans.iter().cloned());
    names.dedup();
    for san in names {
        let entry = match san.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) if is_dns_name(&san) => SanType::DnsName(
                san.clone()
                    .try_into()
                    .map_err(|_| CertError::San(san.clone()))?,
            ),
            Err(_) => return Err(CertError::San(san)),
        };
        params.subject_alt_names.push(entry);
    }
    issue(dir, &format!("agent-{name}"), params, days)
}

/// Issues `client-NAME.pem` for a client with `role`.
pub fn issue_client(dir: &Path, name: &str, role: Role, days: u32) -> Result<Issued, CertError> {
    check_name(name)?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.subject_alt_names = vec![SanType::URI(
        role.uri()
            .try_into()
            .map_err(|_| CertError::Name(name.to_owned()))?,
    )];
    issue(dir, &format!("client-{name}"), params, days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path(), 30, false).expect("init");
        let err = init(dir.path(), 30, false).expect_err("exists");
        assert!(matches!(err, CertError::Exists(p) if p.ends_with("ca.pem")));
        init(dir.path(), 30, true).expect("forced");
    }

    #[test]
    fn keys_are_private_and_files_named_by_role() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path(), 30, false).expect("init");
        let a = issue_agent(
            dir.path(),
            "no1",
            &["127.0.0.1".into(), "no1.lab".into()],
            30,
        )
        .expect("agent");
        assert_eq!(a.cert, dir.path().join("agent-no1.pem"));
        let c = issue_client(dir.path(), "alice", Role::Viewer, 30).expect("client");
        assert_eq!(c.key, dir.path().join("client-alice-key.pem"));
        let mode = fs::metadata(&c.key).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn bad_input_is_refused_with_the_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            issue_client(dir.path(), "x", Role::Admin, 30),
            Err(CertError::NoCa(_))
        ));
        init(dir.path(), 30, false).expect("init");
        assert!(matches!(
            issue_client(dir.path(), "../evil", Role::Admin, 30),
            Err(CertError::Name(n)) if n == "../evil"
        ));
        assert!(matches!(
            issue_agent(dir.path(), "no1", &["bad name!".into()], 30),
            Err(CertError::San(s)) if s == "bad name!"
        ));
        assert!(matches!(
            issue_client(dir.path(), "x", Role::Admin, 0),
            Err(CertError::Days(0))
        ));
    }
}
