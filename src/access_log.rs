//! The access log writer thread. Workers `try_send` records into a bounded queue and count what
//! does not fit; this thread formats and writes them in batches.

use std::io::Write;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use lb_core::access_log::AccessRecord;
use lb_core::config::{AccessLogConfig, AccessLogTarget};

/// Starts the writer; `None` when the log is off.
pub(crate) fn start(cfg: &AccessLogConfig) -> std::io::Result<Option<(Sender<AccessRecord>, JoinHandle<()>)>> {
    let out: Box<dyn Write + Send> = match &cfg.target {
        AccessLogTarget::Off => return Ok(None),
        AccessLogTarget::Stdout => Box::new(std::io::stdout()),
        AccessLogTarget::File(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("access log {}: {e}", p.display())))?,
        ),
    };
    let (tx, rx) = crossbeam_channel::bounded(cfg.buffer_lines);
    let format = cfg.format;
    let handle =
        std::thread::Builder::new().name("lbd-access-log".into()).spawn(move || write_loop(rx, out, format))?;
    Ok(Some((tx, handle)))
}

fn write_loop(rx: Receiver<AccessRecord>, mut out: Box<dyn Write + Send>, format: lb_core::config::AccessLogFormat) {
    let mut buf = String::with_capacity(64 * 1024);
    while let Ok(rec) = rx.recv() {
        rec.write_line(format, &mut buf);
        while buf.len() < 60 * 1024 {
            match rx.try_recv() {
                Ok(rec) => rec.write_line(format, &mut buf),
                Err(_) => break,
            }
        }
        if out.write_all(buf.as_bytes()).and_then(|()| out.flush()).is_err() {
            // Nowhere to report to but stderr; keep draining so workers never block.
            eprintln!("lbd: access log write failed");
        }
        buf.clear();
    }
}
