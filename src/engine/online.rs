//! Whether the hub endpoint can be reached: the console's online/offline indicator.

/// Whether a TCP connection to the hub endpoint's host and port succeeds within `timeout` (the console's
/// online/offline indicator; no request is sent, no token leaves the machine).
pub async fn endpoint_reachable(endpoint: &str, timeout: std::time::Duration) -> bool {
    let Ok(u) = url::Url::parse(endpoint) else {
        return false;
    };
    let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default()) else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    matches!(
        tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port))
        )
        .await,
        Ok(Ok(_))
    )
}
