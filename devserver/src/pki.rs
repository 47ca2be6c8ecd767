//! The test PKI: a dev CA with server and device certificates, a second
//! unrelated CA with a "rogue" device, and an expired server certificate.
//!
//! A CA already in the directory is reused so that device certificates a user
//! issued survive a server restart; everything else is regenerated each start.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateSigningRequestParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::httpdate::{civil, unix_now};
use crate::sec1;

/// The CN of the default device certificate.
pub const DEVICE_CN: &str = "nhc-demo-0001";
const ORGANIZATION: &str = "nhc-devserver";

/// Paths of the PEM files the server generated (all inside `dir`).
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub device_cert: PathBuf,
    /// PKCS#8 EC P-256, CN "nhc-demo-0001".
    pub device_key: PathBuf,
    /// The same key as SEC1 "EC PRIVATE KEY".
    pub device_key_sec1: PathBuf,
    /// A second, unrelated CA.
    pub other_ca: PathBuf,
    /// A device certificate signed by `other_ca`.
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
    /// Signed by `ca`, validity entirely in the past.
    pub expired_server_cert: PathBuf,
    pub expired_server_key: PathBuf,
    ca_cert_pem: String,
    ca_key_pem: String,
}

fn rcgen_err(context: &str) -> impl FnOnce(rcgen::Error) -> io::Error + '_ {
    move |e| io::Error::other(format!("{context}: {e}"))
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn
}

/// From a year ago to ten years ahead, so a skewed test clock still accepts it.
fn current_validity(params: &mut CertificateParams) {
    let year = i32::try_from(civil(unix_now()).year).unwrap_or(2026);
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + 10, 1, 1);
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    current_validity(&mut params);
    params
}

fn leaf_params(
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> io::Result<CertificateParams> {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).map_err(rcgen_err("subject alt names"))?;
    params.distinguished_name = name(cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    current_validity(&mut params);
    Ok(params)
}

/// A new key and a certificate for it, as PEM (certificate, PKCS#8 key).
fn issue(
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
) -> io::Result<(String, KeyPair)> {
    let key = KeyPair::generate().map_err(rcgen_err("key generation"))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(rcgen_err("certificate signing"))?;
    Ok((cert.pem(), key))
}

fn write(path: &Path, contents: &str, secret: bool) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    io::Write::write_all(&mut options.open(path)?, contents.as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn read(path: &Path) -> io::Result<String> {
    fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// File names safe on every platform, derived from a CN.
fn file_stem(cn: &str) -> String {
    cn.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Pki {
    /// Creates `dir` if needed, reuses its CA if present, and (re)writes every other file.
    pub(crate) fn load_or_create(dir: &Path) -> io::Result<Pki> {
        fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let dir = fs::canonicalize(dir)?;
        let p = |f: &str| dir.join(f);
        let (ca_path, ca_key_path) = (p("ca.pem"), p("ca-key.pem"));

        let (ca_cert_pem, ca_key_pem) = if ca_path.is_file() && ca_key_path.is_file() {
            log::info!("reusing the CA in {}", dir.display());
            (read(&ca_path)?, read(&ca_key_path)?)
        } else {
            let key = KeyPair::generate().map_err(rcgen_err("CA key generation"))?;
            let cert = ca_params("nhc-devserver CA")
                .self_signed(&key)
                .map_err(rcgen_err("CA signing"))?;
            let pems = (cert.pem(), key.serialize_pem());
            write(&ca_key_path, &pems.1, true)?;
            write(&ca_path, &pems.0, false)?;
            pems
        };

        let pki = Pki {
            ca: ca_path,
            server_cert: p("server.pem"),
            server_key: p("server-key.pem"),
            device_cert: p("device.pem"),
            device_key: p("device-key.pem"),
            device_key_sec1: p("device-key-sec1.pem"),
            other_ca: p("other-ca.pem"),
            rogue_cert: p("rogue.pem"),
            rogue_key: p("rogue-key.pem"),
            expired_server_cert: p("expired-server.pem"),
            expired_server_key: p("expired-server-key.pem"),
            dir,
            ca_cert_pem,
            ca_key_pem,
        };
        pki.generate_leaves()?;
        Ok(pki)
    }

    fn issuer(&self) -> io::Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(&self.ca_key_pem).map_err(rcgen_err("ca-key.pem"))?;
        Issuer::from_ca_cert_pem(&self.ca_cert_pem, key).map_err(rcgen_err("ca.pem"))
    }

    fn generate_leaves(&self) -> io::Result<()> {
        let issuer = self.issuer()?;
        let server_sans = ["localhost", "127.0.0.1", "::1"];

        let server = leaf_params(
            "localhost",
            &server_sans,
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (cert, key) = issue(&server, &issuer)?;
        write(&self.server_key, &key.serialize_pem(), true)?;
        write(&self.server_cert, &cert, false)?;

        let mut expired = server;
        expired.not_before = date_time_ymd(2000, 1, 1);
        expired.not_after = date_time_ymd(2001, 1, 1);
        let (cert, key) = issue(&expired, &issuer)?;
        write(&self.expired_server_key, &key.serialize_pem(), true)?;
        write(&self.expired_server_cert, &cert, false)?;

        let device = leaf_params(DEVICE_CN, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let (cert, key) = issue(&device, &issuer)?;
        let sec1_der = sec1::pkcs8_to_sec1(key.serialized_der())?;
        write(&self.device_key, &key.serialize_pem(), true)?;
        write(
            &self.device_key_sec1,
            &sec1::pem("EC PRIVATE KEY", &sec1_der),
            true,
        )?;
        write(&self.device_cert, &cert, false)?;

        let other_key = KeyPair::generate().map_err(rcgen_err("key generation"))?;
        let other_params = ca_params("nhc-devserver other CA");
        let other_cert = other_params
            .self_signed(&other_key)
            .map_err(rcgen_err("CA signing"))?;
        write(&self.other_ca, &other_cert.pem(), false)?;
        let other = Issuer::new(other_params, other_key);
        let rogue = leaf_params("nhc-rogue-0001", &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let (cert, key) = issue(&rogue, &other)?;
        write(&self.rogue_key, &key.serialize_pem(), true)?;
        write(&self.rogue_cert, &cert, false)?;
        Ok(())
    }

    /// Issues a device certificate with this CN, signed by the dev CA, and
    /// writes it into `dir` as `device-<cn>.pem` and `device-<cn>-key.pem`.
    pub fn issue_device(&self, cn: &str) -> io::Result<(PathBuf, PathBuf)> {
        if cn.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty common name",
            ));
        }
        let issuer = self.issuer()?;
        let params = leaf_params(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let (cert, key) = issue(&params, &issuer)?;
        let stem = file_stem(cn);
        let cert_path = self.dir.join(format!("device-{stem}.pem"));
        let key_path = self.dir.join(format!("device-{stem}-key.pem"));
        write(&key_path, &key.serialize_pem(), true)?;
        write(&cert_path, &cert, false)?;
        Ok((cert_path, key_path))
    }

    /// Signs a device's certificate signing request (PEM) with the dev CA:
    /// the provisioning path for a key that never leaves its chip (PKCS#11
    /// token, TPM, secure element). The CSR's signature is checked; the
    /// certificate gets the CSR's public key, the common name `cn` and the
    /// usual client-auth profile. Written to `dir` as `device-<cn>.pem`.
    pub fn issue_device_for_csr(&self, cn: &str, csr_pem: &str) -> io::Result<PathBuf> {
        if cn.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty common name",
            ));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad CSR: {e}")))?;
        let issuer = self.issuer()?;
        let params = leaf_params(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .map_err(rcgen_err("certificate signing"))?;
        let cert_path = self.dir.join(format!("device-{}.pem", file_stem(cn)));
        write(&cert_path, &cert.pem(), false)?;
        Ok(cert_path)
    }
}
