//! `meshgate generate tls-certificate`: a self-signed key and certificate, as `kumactl generate tls-certificate`
//! makes them (RSA 2048 by default or ECDSA P-256, SANs for every hostname, ten years, PKCS#8 key).

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType};

/// Arguments of `generate tls-certificate`.
#[derive(Debug, Args)]
pub struct TlsCertificateArgs {
    /// Type of the certificate: client or server.
    #[arg(long = "type", value_name = "client|server", default_value = "")]
    pub cert_type: String,
    /// Type of the private key: rsa (default) or ecdsa.
    #[arg(long = "key-type", value_name = "rsa|ecdsa", default_value = "")]
    pub key_type: String,
    /// DNS hostname(s) or IP address(es) to issue the certificate for (comma-separated, or repeat the flag).
    #[arg(long = "hostname", value_name = "HOST1[,HOST2...]", value_delimiter = ',')]
    pub hostnames: Vec<String>,
    /// Where to write the private key (`-` for standard output).
    #[arg(long = "key-file", default_value = "key.pem")]
    pub key_file: String,
    /// Where to write the certificate (`-` for standard output).
    #[arg(long = "cert-file", default_value = "cert.pem")]
    pub cert_file: String,
}

/// How long generated certificates are valid.
const VALIDITY_DAYS: i64 = 10 * 365;

/// Runs the command.
pub fn tls_certificate(args: &TlsCertificateArgs) -> anyhow::Result<ExitCode> {
    let usage = match args.cert_type.as_str() {
        "server" => ExtendedKeyUsagePurpose::ServerAuth,
        "client" => ExtendedKeyUsagePurpose::ClientAuth,
        other => bail!("invalid certificate type {other:?}"),
    };
    let hostnames: Vec<&str> = args.hostnames.iter().map(|h| h.trim()).filter(|h| !h.is_empty()).collect();
    if hostnames.is_empty() {
        bail!("at least one hostname must be given");
    }
    let key = match args.key_type.as_str() {
        "" | "rsa" => rsa_key()?,
        "ecdsa" => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("could not generate certificate")?,
        other => bail!("invalid key type {other:?}"),
    };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, hostnames[0]);
    params.distinguished_name = dn;
    for host in &hostnames {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                (*host).try_into().map_err(|_| anyhow!("invalid hostname {host:?}: only ASCII names are allowed"))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![usage];
    let cert = params.self_signed(&key).context("could not generate certificate")?;

    write_output(&args.key_file, key.serialize_pem().as_bytes(), 0o400).context("could not write the key file")?;
    write_output(&args.cert_file, cert.pem().as_bytes(), 0o600).context("could not write the cert file")?;
    if args.key_file != "-" && args.cert_file != "-" {
        println!("Private key saved in {}", args.key_file);
        println!("Certificate saved in {}", args.cert_file);
    }
    Ok(ExitCode::SUCCESS)
}

fn rsa_key() -> anyhow::Result<KeyPair> {
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = rand::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).context("could not generate certificate")?;
    let der = key.to_pkcs8_der().context("could not generate certificate")?;
    KeyPair::try_from(der.as_bytes()).context("could not generate certificate")
}

fn write_output(target: &str, data: &[u8], mode: u32) -> anyhow::Result<()> {
    if target == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(data)?;
        return Ok(out.flush()?);
    }
    let path = Path::new(target);
    // A key file is written read-only; replace an earlier one instead of failing on its permissions.
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(data)?;
    Ok(file.sync_all()?)
}
