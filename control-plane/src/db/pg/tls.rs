//! TLS to PostgreSQL (control-plane/README.md, "PostgreSQL", "The URL"):
//! the rustls client configuration each `sslmode` asks for, as libpq reads
//! it (`config::resolve_tls` decides what is checked; this builds it).
//!
//! - Nothing checked (prefer and require without a root file): the
//!   handshake's signatures are still verified — the session is encrypted
//!   to whoever holds the key of the certificate shown — but the
//!   certificate is taken as it is, as libpq takes it.
//! - The chain (verify-ca; prefer and require with a root file): rustls's
//!   WebPKI verifier against the roots, with only its host-name verdict
//!   ignored. It checks the chain (signatures, validity dates, key usage)
//!   before the name, so a certificate that fails on its name has passed
//!   everything else.
//! - The chain and the host (verify-full): rustls's WebPKI verifier as it
//!   is, against `sslrootcert` or the system's roots.
//!
//! The configuration is made at every connection (a handful per process,
//! and again after a break), so a rotated root file is read at the next one.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{RootCerts, SslMode, Tls, Verify};

/// The connector for `tls`, or None for sslmode=disable. Errors say which
/// root file or store could not be used.
pub(super) fn connector(tls: &Tls) -> Result<Option<MakeRustlsConnect>, String> {
    if tls.mode == SslMode::Disable {
        return Ok(None);
    }
    // rustls 0.23.48 deprecates ring's provider only to point at
    // aws-lc-rs's post-quantum key exchange; aws-lc-rs needs cmake to build,
    // and classical X25519/P-256 is what libpq with OpenSSL before 3.5 offers.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match (tls.verify, &tls.roots) {
        (Verify::Nothing, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TakeAny(provider)))
            .with_no_client_auth(),
        (Verify::Chain, Some(roots)) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(roots)?), provider)
                    .build()
                    .map_err(|e| format!("TLS: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                .with_no_client_auth()
        }
        (Verify::ChainAndHost, Some(roots)) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(roots)?), provider)
                    .build()
                    .map_err(|e| format!("TLS: {e}"))?;
            builder.with_webpki_verifier(webpki).with_no_client_auth()
        }
        // Never weakened to taking any certificate: resolve_tls names roots
        // whenever it asks for a check.
        (_, None) => return Err("TLS: a certificate check without roots".into()),
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The roots: every certificate of a PEM file, or the system's.
fn root_store(roots: &RootCerts) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let shown = path.display();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert={shown}: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("sslrootcert={shown}: {e}"))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert={shown} holds no usable CA certificate (PEM, -----BEGIN CERTIFICATE-----)"
                ));
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(format!(
                    "sslmode=verify-full checks against the system's root certificates, and none \
                     were found{why}: install them (ca-certificates) or give sslrootcert=PATH"
                ));
            }
        }
    }
    Ok(store)
}

/// Checks the chain, not the name (see the module's doc).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Takes any certificate, but verifies the handshake's signatures with it
/// (see the module's doc).
#[derive(Debug)]
struct TakeAny(Arc<CryptoProvider>);

impl ServerCertVerifier for TakeAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
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
