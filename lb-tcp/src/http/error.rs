//! Why a request could not be proxied, and what the client gets. (Whether another endpoint may
//! be tried is decided by whether the request came back unsent, see `proxy::send`.)

use std::fmt;

use hyper::StatusCode;

/// A proxying failure.
#[derive(Debug)]
pub enum ProxyError {
    /// The request head is larger than the listener's `max_request_header_bytes`.
    HeadTooLarge,
    /// No route matched the request.
    NoRoute,
    /// The listener went away with a reload.
    ListenerGone,
    /// The cluster has no endpoint to pick.
    NoEndpoint,
    /// Connecting to the endpoint failed (refused, unreachable, reset).
    Connect(std::io::Error),
    /// Connecting took longer than `connect_timeout`.
    ConnectTimeout,
    /// The upstream connection broke, or its response was malformed.
    Upstream(super::body::BoxError),
    /// No response head within `request_timeout`.
    UpstreamTimeout,
}

impl ProxyError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::ListenerGone | Self::NoEndpoint => StatusCode::SERVICE_UNAVAILABLE,
            Self::Connect(_) | Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::ConnectTimeout | Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeadTooLarge => f.write_str("request head larger than this listener accepts"),
            Self::NoRoute => f.write_str("no route matches this request"),
            Self::ListenerGone => f.write_str("listener removed by reload"),
            Self::NoEndpoint => f.write_str("no endpoint available"),
            Self::Connect(e) => write!(f, "upstream connect failed: {e}"),
            Self::ConnectTimeout => f.write_str("upstream connect timed out"),
            Self::Upstream(e) => write!(f, "upstream connection failed: {e}"),
            Self::UpstreamTimeout => f.write_str("upstream response timed out"),
        }
    }
}

impl std::error::Error for ProxyError {}
