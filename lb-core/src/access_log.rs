//! Access log records and their formatting. Workers hand records to a bounded queue; a writer
//! thread formats and writes them, so no worker waits on disk.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::config::AccessLogFormat;

/// One request (or one L4 connection).
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// When the request arrived.
    pub time: SystemTime,
    /// Worker index.
    pub worker: usize,
    /// Listener name.
    pub listener: String,
    /// Client address.
    pub client: SocketAddr,
    /// `GET`, … (`-` for tcp).
    pub method: String,
    /// Host header (`-` when absent).
    pub host: String,
    /// Path and query.
    pub path: String,
    /// `HTTP/1.1`, `tcp`.
    pub protocol: &'static str,
    /// Status sent (0 for tcp).
    pub status: u16,
    /// Route name.
    pub route: String,
    /// Cluster name.
    pub cluster: String,
    /// Endpoint that answered, if any.
    pub upstream: Option<SocketAddr>,
    /// Microseconds to the response head (whole connection for tcp).
    pub duration_us: u64,
    /// The request id sent upstream.
    pub request_id: String,
    /// Attempts made (1 + retries).
    pub attempts: u32,
    /// The verified client certificate's identity (mTLS), as sent in `X-Forwarded-Client-Cert`.
    pub client_cert: Option<String>,
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl AccessRecord {
    /// Appends the record as one line (with `\n`) in `format`.
    pub fn write_line(&self, format: AccessLogFormat, out: &mut String) {
        let ts = self.time.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let upstream = self.upstream.map_or_else(|| "-".to_string(), |a| a.to_string());
        match format {
            AccessLogFormat::Json => {
                let _ = write!(out, "{{\"ts\":{ts:.6},\"worker\":{},\"listener\":", self.worker);
                json_str(out, &self.listener);
                let _ = write!(out, ",\"client\":\"{}\",\"method\":", self.client);
                json_str(out, &self.method);
                out.push_str(",\"host\":");
                json_str(out, &self.host);
                out.push_str(",\"path\":");
                json_str(out, &self.path);
                let _ = write!(out, ",\"protocol\":\"{}\",\"status\":{},\"route\":", self.protocol, self.status);
                json_str(out, &self.route);
                out.push_str(",\"cluster\":");
                json_str(out, &self.cluster);
                let _ =
                    write!(out, ",\"upstream\":\"{upstream}\",\"duration_us\":{},\"request_id\":", self.duration_us);
                json_str(out, &self.request_id);
                let _ = write!(out, ",\"attempts\":{}", self.attempts);
                if let Some(c) = &self.client_cert {
                    out.push_str(",\"client_cert\":");
                    json_str(out, c);
                }
                out.push_str("}\n");
            }
            AccessLogFormat::Text => {
                let _ = writeln!(
                    out,
                    "{ts:.3} {} {} \"{} {} {}\" {} {} host={:?} route={} cluster={} upstream={upstream} us={} id={} attempts={}",
                    self.listener,
                    self.client,
                    self.method,
                    self.path.escape_debug(),
                    self.protocol,
                    self.status,
                    self.worker,
                    self.host,
                    self.route,
                    self.cluster,
                    self.duration_us,
                    self.request_id,
                    self.attempts
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_escape_what_clients_send() {
        let r = AccessRecord {
            time: SystemTime::UNIX_EPOCH,
            worker: 1,
            listener: "web".into(),
            client: "127.0.0.1:5000".parse().expect("addr"),
            method: "GET".into(),
            host: "a\"b".into(),
            path: "/x\ny\u{1}".into(),
            protocol: "HTTP/1.1",
            status: 200,
            route: "r".into(),
            cluster: "c".into(),
            upstream: None,
            duration_us: 12,
            request_id: "id".into(),
            attempts: 1,
            client_cert: Some("Hash=ab;DNS=c.test".into()),
        };
        let mut s = String::new();
        r.write_line(AccessLogFormat::Json, &mut s);
        assert!(s.ends_with("}\n"));
        assert_eq!(s.matches('\n').count(), 1);
        assert!(s.contains(r#""host":"a\"b""#), "{s}");
        assert!(s.contains(r#""path":"/x\ny\u0001""#), "{s}");
        assert!(s.contains(r#""upstream":"-""#), "{s}");
        assert!(s.ends_with(",\"client_cert\":\"Hash=ab;DNS=c.test\"}\n"), "{s}");
    }
}
