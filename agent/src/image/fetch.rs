//! Starting the HTTP download of an image and reading its body.

use std::error::Error as _;
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};

use super::error::WriteError;

/// A client for image downloads: rustls with the ring provider, no transparent
/// decompression (the checksum covers the artifact as served), a connect timeout.
pub fn default_client() -> Result<Client, WriteError> {
    // Fails only if a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The system's CA certificates if there are any (a ramdisk may have none: http:// images
    // still work, https:// ones then fail verification with a clear error).
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| WriteError::Internal(format!("building the HTTP client: {}", chain(&e))))
}

/// Sends the GET and checks the status: 404/410 → [`WriteError::ImageNotFound`], any other
/// non-2xx → [`WriteError::DownloadFailed`].
pub async fn get(client: &Client, url: &str) -> Result<Response, WriteError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| download_failed(url, &e))?;
    match response.status() {
        StatusCode::NOT_FOUND | StatusCode::GONE => Err(WriteError::ImageNotFound {
            url: url.to_string(),
        }),
        s if !s.is_success() => Err(WriteError::DownloadFailed {
            url: url.to_string(),
            detail: format!("HTTP {s}"),
        }),
        _ => Ok(response),
    }
}

/// A [`WriteError::DownloadFailed`] carrying the whole error chain.
pub fn download_failed(url: &str, error: &reqwest::Error) -> WriteError {
    WriteError::DownloadFailed {
        url: url.to_string(),
        detail: chain(error),
    }
}

/// An error and its sources, joined by `: `.
pub(crate) fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
