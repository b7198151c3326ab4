use super::*;

const GOOD: &str = r#"
workers = 2
io_backend = "epoll"
drain_timeout = "5s"

[admin]
bind = "127.0.0.1:9901"

[access_log]
path = "off"

[[listeners]]
name = "web"
bind = ["127.0.0.1:8080", "[::1]:8080"]
idle_timeout = "30s"

  [[listeners.routes]]
  host = "*.example.com"
  path_prefix = "/api/"
  cluster = "api"

  [[listeners.routes]]
  cluster = "web"

[[listeners]]
name = "db"
kind = "tcp"
bind = "127.0.0.1:5433"
cluster = "web"

[[clusters]]
name = "api"
policy = "ring_hash"
hash_on = "header:X-User"
endpoints = ["127.0.0.1:9001", { address = "127.0.0.1:9002", weight = 3 }]
  [clusters.health_check]
  path = "/healthz"
  interval = "250ms"

[[clusters]]
name = "web"
endpoints = ["127.0.0.1:9003"]
"#;

#[test]
fn a_good_config_parses_with_defaults() {
    let c = parse(GOOD, "good.toml").expect("valid");
    assert_eq!(c.workers, 2);
    assert_eq!(c.io_backend, IoBackendChoice::Epoll);
    assert_eq!(c.listeners.len(), 2);
    let web = &c.listeners[0];
    assert_eq!(web.bind.len(), 2);
    assert!(web.bind[1].is_ipv6());
    assert_eq!(web.idle_timeout, std::time::Duration::from_secs(30));
    assert_eq!(web.header_read_timeout, std::time::Duration::from_secs(10));
    let ListenerKind::Http { routes } = &web.kind else { panic!("http listener expected") };
    assert_eq!(routes[0].host, Some(HostMatch::Suffix(".example.com".into())));
    assert_eq!(routes[0].path, PathMatch::Prefix("/api/".into()));
    assert_eq!(routes[1].name, "web/1");
    assert_eq!(c.listeners[1].kind, ListenerKind::Tcp { cluster: "web".into(), sni_routes: Vec::new() });
    let api = &c.clusters[0];
    assert_eq!(api.policy, Policy::RingHash);
    assert_eq!(api.hash_on, HashOn::Header("x-user".into()));
    assert_eq!(api.endpoints[1].weight, 3);
    let hc = api.health_check.as_ref().expect("health check");
    assert_eq!(hc.interval, std::time::Duration::from_millis(250));
    assert_eq!((hc.rise, hc.fall), (2, 3));
    assert_eq!(c.clusters[1].policy, Policy::RoundRobin);
    assert_eq!(c.access_log.target, AccessLogTarget::Off);
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, "bad.toml") {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

#[test]
fn unknown_key_is_reported_with_its_line_and_column() {
    let text = GOOD.replace("idle_timeout = \"30s\"", "idle_timeout = \"30s\"\nidel_timeout = \"5s\"");
    let line = text.lines().position(|l| l.starts_with("idel_timeout")).expect("line") + 1;
    let errs = errors(&text);
    assert_eq!(errs, vec![format!("bad.toml:{line}:1: unknown key `idel_timeout` in a [[listeners]] entry")]);
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = GOOD
        .replace("policy = \"ring_hash\"", "policy = \"fastest\"")
        .replace("interval = \"250ms\"", "interval = \"soon\"")
        .replace("cluster = \"api\"", "cluster = \"apii\"")
        .replace("workers = 2", "workers = 2\nwokers = 3");
    let errs = errors(&text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("unknown key `wokers`")));
    assert!(errs.iter().any(|e| e.contains("`policy` must be one of")));
    assert!(errs.iter().any(|e| e.contains("`interval`: `soon` is not a duration")));
    assert!(errs.iter().any(|e| e.contains("no cluster named `apii`")));
    // Sorted by position, each with FILE:LINE:COL.
    let lines: Vec<usize> =
        errs.iter().map(|e| e.split(':').nth(1).and_then(|n| n.parse().ok()).expect("line")).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn workers_are_pinned_unless_the_config_says_not() {
    assert!(parse(GOOD, "good.toml").expect("valid").pin_workers);
    let off = GOOD.replace("workers = 2", "workers = 2\npin_workers = false");
    assert!(!parse(&off, "good.toml").expect("valid").pin_workers);
    let bad = GOOD.replace("workers = 2", "workers = 2\npin_workers = \"no\"");
    assert_eq!(errors(&bad), vec!["bad.toml:3:15: `pin_workers` must be true or false".to_string()]);
}

#[test]
fn syntax_errors_have_positions() {
    let errs = errors("workers = 2\n[[listeners]\nname = \"x\"\n");
    assert!(errs[0].starts_with("bad.toml:2:"), "{errs:?}");
}

#[test]
fn cross_references_and_duplicates_are_checked() {
    let text = GOOD
        .replace("bind = \"127.0.0.1:5433\"", "bind = \"127.0.0.1:8080\"")
        .replace("name = \"web\"\nendpoints", "name = \"api\"\nendpoints");
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.contains("address 127.0.0.1:8080 is bound by two listeners")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("cluster `api` is defined twice")), "{errs:#?}");
}

#[test]
fn wrong_types_and_ranges_are_errors() {
    let errs = errors(
        "[[listeners]]\nname = 1\nbind = \"nope\"\nmax_request_header_bytes = 100\n[[listeners.routes]]\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [{ address = \"127.0.0.1:1\", weight = 0 }]\nhash_on = \"query:x\"\n",
    );
    assert!(errs.iter().any(|e| e.starts_with("bad.toml:2:8: `name` must be a string")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("`bind`: `nope` is not an address")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("`max_request_header_bytes` must be between 8192")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("`weight` must be between 1 and 10000")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("`hash_on` must be")), "{errs:#?}");
}

#[test]
fn durations() {
    use std::time::Duration;
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("5 parsecs"), None);
}

#[test]
fn cidrs_parse_and_match() {
    let net: Cidr = "10.1.0.0/16".parse().expect("cidr");
    assert!(net.contains("10.1.255.3".parse().expect("ip")));
    assert!(!net.contains("10.2.0.1".parse().expect("ip")));
    assert!(net.contains("::ffff:10.1.0.9".parse().expect("ip")), "IPv4-mapped addresses match IPv4 networks");
    let host: Cidr = "127.0.0.1".parse().expect("cidr");
    assert!(host.contains("127.0.0.1".parse().expect("ip")) && !host.contains("127.0.0.2".parse().expect("ip")));
    let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
    assert!(all.contains("192.0.2.1".parse().expect("ip")));
    let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
    assert!(v6.contains("2001:db8:1::1".parse().expect("ip")) && !v6.contains("2001:db9::1".parse().expect("ip")));
    assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    assert!("nonsense/8".parse::<Cidr>().is_err());
}

#[test]
fn quic_settings_decode_and_bad_ones_are_errors() {
    let text = GOOD.replace(
        "[admin]",
        "[quic]\nserver_id = \"0a01\"\nsteering = \"forward\"\nretry_threshold = 0\nmax_streams = 50\n[admin]",
    );
    let cfg = parse(&text, "good.toml").expect("valid");
    assert_eq!(cfg.quic.server_id, vec![0x0a, 0x01]);
    assert_eq!(cfg.quic.steering, QuicSteering::Forward);
    assert_eq!((cfg.quic.retry_threshold, cfg.quic.max_streams), (0, 50));
    let defaults = parse(GOOD, "good.toml").expect("valid").quic;
    assert_eq!(defaults, QuicConfig::default());

    let errs = errors(&GOOD.replace("[admin]", "[quic]\nserver_id = \"0a1\"\nsteering = \"ebpf\"\n[admin]"));
    assert!(errs.iter().any(|e| e.starts_with("bad.toml:7:13: `server_id` must be 1 to 14 bytes")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("`steering` must be \"cbpf\" or \"forward\"")), "{errs:#?}");
    let errs = errors(&GOOD.replace("[admin]", "[quic]\nserver_id = \"000102030405060708090a0b0c0d0e\"\n[admin]"));
    assert!(errs.iter().any(|e| e.contains("`server_id` must be 1 to 14 bytes")), "{errs:#?}");
}

#[test]
fn zero_rtt_and_client_certificates_exclude_each_other() {
    let errs = errors(
        "[[listeners]]\nname = \"e\"\nkind = \"https\"\nbind = \"127.0.0.1:8443\"\n  [listeners.tls]\n  \
         certificates = [{ cert = \"a.crt\", key = \"a.key\" }]\n  zero_rtt = true\n  client_auth = \"required\"\n  \
         client_ca = \"ca.crt\"\n  [[listeners.routes]]\n  cluster = \"c\"\n[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n",
    );
    assert!(errs.iter().any(|e| e.contains("`zero_rtt` cannot be combined with `client_auth`")), "{errs:#?}");
}
