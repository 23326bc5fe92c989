//! TLS set-up with rustls: client configurations (system roots, an extra CA, or — for tests —
//! no verification at all) and server configurations from PEM files.

use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::error::{Error, Result};

/// How a client checks the server's certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Extra trusted CA certificates, PEM-encoded, added to the system's roots.
    pub root_ca_pem: Option<Vec<u8>>,
    /// Accept any certificate. For tests against self-signed servers only: it removes all
    /// protection TLS gives against an active attacker.
    pub danger_accept_invalid_certs: bool,
}

/// A rustls client configuration for `options`. The default one is built once and shared.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if options.root_ca_pem.is_none() && !options.danger_accept_invalid_certs {
        if let Some(config) = DEFAULT.get() {
            return Ok(Arc::clone(config));
        }
        let config = Arc::new(build_client_config(options)?);
        return Ok(Arc::clone(DEFAULT.get_or_init(|| config)));
    }
    Ok(Arc::new(build_client_config(options)?))
}

/// A rustls server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| Error::Tls(format!("bad certificate PEM: {err}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("no certificate in the PEM data".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|err| Error::Tls(format!("bad private key PEM: {err}")))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Tls(err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| Error::Tls(err.to_string()))?;
    Ok(Arc::new(config))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn build_client_config(options: &TlsOptions) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Tls(err.to_string()))?;
    if options.danger_accept_invalid_certs {
        let verifier = Arc::new(AcceptAnyCert(provider()));
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth());
    }
    Ok(builder
        .with_root_certificates(root_store(options)?)
        .with_no_client_auth())
}

fn root_store(options: &TlsOptions) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // One unusable system certificate should not make every connection fail.
        let _ = roots.add(cert);
    }
    if let Some(pem) = &options.root_ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|err| Error::Tls(format!("bad CA PEM: {err}")))?;
            roots
                .add(cert)
                .map_err(|err| Error::Tls(format!("unusable CA certificate: {err}")))?;
        }
    }
    if roots.is_empty() {
        return Err(Error::Tls(
            "no trusted root certificates (none on the system, none given)".into(),
        ));
    }
    Ok(roots)
}

/// Accepts every server certificate; signatures are still checked so the handshake is sound.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
