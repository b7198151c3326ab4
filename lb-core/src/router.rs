//! Request routing for `http` listeners: ordered routes, first match wins.
//!
//! Host matching ignores case and the port; `*.example.com` matches any name with at least one
//! label before `.example.com` (as Envoy does). No allocation per lookup.

use crate::config::{HostMatch, PathMatch, RouteConfig};

/// What a matched route points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTarget {
    /// Index of the cluster in the snapshot.
    pub cluster: usize,
    /// Metrics slot of this route.
    pub slot: usize,
}

#[derive(Debug, Clone)]
struct Compiled {
    host: Option<HostMatch>,
    path: PathMatch,
    target: RouteTarget,
}

/// A listener's compiled route table.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Compiled>,
}

impl Router {
    /// Compiles routes; `resolve` maps a cluster name to its index, `slot` gives each route's
    /// metrics slot.
    pub fn new(routes: &[RouteConfig], mut target: impl FnMut(usize, &RouteConfig) -> RouteTarget) -> Self {
        let routes = routes
            .iter()
            .enumerate()
            .map(|(i, r)| Compiled { host: r.host.clone(), path: r.path.clone(), target: target(i, r) })
            .collect();
        Self { routes }
    }

    /// The first route matching `host` (a Host header or authority, port allowed) and `path`.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<RouteTarget> {
        let host = host.map(strip_port);
        self.routes
            .iter()
            .find(|r| host_matches(r.host.as_ref(), host) && path_matches(&r.path, path))
            .map(|r| r.target)
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn host_matches(m: Option<&HostMatch>, host: Option<&str>) -> bool {
    match (m, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostMatch::Exact(e)), Some(h)) => h.eq_ignore_ascii_case(e),
        (Some(HostMatch::Suffix(s)), Some(h)) => {
            h.len() > s.len() && h.is_char_boundary(h.len() - s.len()) && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
        }
    }
}

fn path_matches(m: &PathMatch, path: &str) -> bool {
    match m {
        PathMatch::Any => true,
        PathMatch::Exact(p) => path == p,
        PathMatch::Prefix(p) => path.starts_with(p.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<HostMatch>, path: PathMatch, cluster: &str) -> RouteConfig {
        RouteConfig { name: cluster.into(), host, path, cluster: cluster.into() }
    }

    fn router() -> Router {
        let routes = vec![
            route(Some(HostMatch::Exact("api.example.com".into())), PathMatch::Prefix("/v2/".into()), "api-v2"),
            route(Some(HostMatch::Exact("api.example.com".into())), PathMatch::Any, "api"),
            route(Some(HostMatch::Suffix(".example.com".into())), PathMatch::Exact("/health".into()), "wild-health"),
            route(Some(HostMatch::Suffix(".example.com".into())), PathMatch::Any, "wild"),
            route(None, PathMatch::Prefix("/static/".into()), "static"),
            route(None, PathMatch::Any, "default"),
        ];
        Router::new(&routes, |i, _| RouteTarget { cluster: i, slot: i })
    }

    fn hit(r: &Router, host: Option<&str>, path: &str) -> Option<usize> {
        r.route(host, path).map(|t| t.cluster)
    }

    #[test]
    fn first_match_wins_in_order() {
        let r = router();
        assert_eq!(hit(&r, Some("api.example.com"), "/v2/users"), Some(0));
        assert_eq!(hit(&r, Some("api.example.com"), "/v1/users"), Some(1));
        // The exact api host shadows the wildcard even for /health.
        assert_eq!(hit(&r, Some("api.example.com"), "/health"), Some(1));
    }

    #[test]
    fn host_ignores_case_and_port() {
        let r = router();
        assert_eq!(hit(&r, Some("API.Example.COM:8080"), "/v2/x"), Some(0));
        assert_eq!(hit(&r, Some("[::1]:8080"), "/static/a.css"), Some(4));
    }

    #[test]
    fn wildcard_needs_a_label_before_the_suffix() {
        let r = router();
        assert_eq!(hit(&r, Some("www.example.com"), "/health"), Some(2));
        assert_eq!(hit(&r, Some("a.b.example.com"), "/x"), Some(3));
        assert_eq!(hit(&r, Some("example.com"), "/x"), Some(5));
        assert_eq!(hit(&r, Some("badexample.com"), "/x"), Some(5));
    }

    #[test]
    fn exact_path_is_exact_and_prefix_is_prefix() {
        let r = router();
        assert_eq!(hit(&r, Some("www.example.com"), "/health/x"), Some(3));
        assert_eq!(hit(&r, None, "/static/"), Some(4));
        assert_eq!(hit(&r, None, "/static"), Some(5));
    }

    #[test]
    fn no_catch_all_means_no_route() {
        let routes = vec![route(None, PathMatch::Prefix("/only/".into()), "c")];
        let r = Router::new(&routes, |i, _| RouteTarget { cluster: i, slot: i });
        assert_eq!(r.route(Some("x"), "/other"), None);
    }
}
