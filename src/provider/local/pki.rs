//! The run-private PKI of a local stack, generated in Rust (rcgen on `ring`): a CA, the API server's
//! serving certificate, the injector's serving certificate, the service-account key pair, and the
//! static admin token. Every file is 0600 in a 0700 directory; the file names are [`Pki`]'s.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

use crate::plan::providers::local::components::Pki;

/// A certificate and its key, as PEM.
struct Pair {
    cert: String,
    key: String,
}

/// Generates everything under `dir`, replacing what is there.
///
/// # Errors
/// Key generation or a write failed.
pub fn generate(dir: &Path) -> Result<Pki, String> {
    create_private_dir(dir)?;
    let pki = Pki { dir: dir.to_path_buf() };
    let ca_key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    ca.distinguished_name.push(DnType::CommonName, "kyvtel-local-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| e.to_string())?;
    let issuer = Issuer::new(ca, ca_key);
    write_private(&pki.ca_crt(), &ca_cert.pem())?;
    write_private(&pki.ca_key(), &issuer.key().serialize_pem())?;

    let api = serving(
        &issuer,
        "kube-apiserver",
        &[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
        &["127.0.0.1", "10.96.0.1"],
    )?;
    write_private(&pki.apiserver_crt(), &api.cert)?;
    write_private(&pki.apiserver_key(), &api.key)?;
    let inj = serving(&issuer, "agent-injector", &["localhost"], &["127.0.0.1"])?;
    write_private(&pki.injector_crt(), &inj.cert)?;
    write_private(&pki.injector_key(), &inj.key)?;

    let sa = KeyPair::generate().map_err(|e| e.to_string())?;
    write_private(&pki.sa_key(), &sa.serialize_pem())?;
    write_private(&pki.sa_pub(), &sa.public_key_pem())?;

    let token = random_token()?;
    write_private(&pki.admin_token(), &token)?;
    write_private(&pki.tokens(), &format!("{token},kyvtel-admin,kyvtel-admin,\"system:masters\"\n"))?;
    Ok(pki)
}

fn serving(issuer: &Issuer<'_, KeyPair>, cn: &str, dns: &[&str], ips: &[&str]) -> Result<Pair, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut p =
        CertificateParams::new(dns.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()).map_err(|e| e.to_string())?;
    for ip in ips {
        p.subject_alt_names.push(SanType::IpAddress(ip.parse().map_err(|e| format!("{ip}: {e}"))?));
    }
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, issuer).map_err(|e| e.to_string())?;
    Ok(Pair { cert: cert.pem(), key: key.serialize_pem() })
}

/// 32 random hex digits from ring's system RNG.
///
/// # Errors
/// The RNG failed.
pub fn random_token() -> Result<String, String> {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).map_err(|_| "the system RNG failed".to_string())?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Creates `dir` (and parents) with mode 0700.
///
/// # Errors
/// The directory cannot be created.
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Writes a 0600 file.
///
/// # Errors
/// The write failed.
pub fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    crate::tools::env::write_private(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_credential_is_0600_in_a_0700_directory() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("kyvtel-pki-{}", std::process::id()));
        let pki = generate(&dir.join("pki")).unwrap();
        assert_eq!(std::fs::metadata(&pki.dir).unwrap().permissions().mode() & 0o777, 0o700);
        for f in std::fs::read_dir(&pki.dir).unwrap().flatten() {
            assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600, "{}", f.path().display());
        }
        let crt = std::fs::read_to_string(pki.apiserver_crt()).unwrap();
        assert!(crt.starts_with("-----BEGIN CERTIFICATE-----"));
        let tokens = std::fs::read_to_string(pki.tokens()).unwrap();
        assert!(tokens.ends_with(",kyvtel-admin,kyvtel-admin,\"system:masters\"\n"), "{tokens}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
