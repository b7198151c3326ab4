//! Configuration: the model ([`model`]), and [`parse`], which turns TOML text into a validated
//! [`Config`] or into every error found, each with its line and column.

mod decode;
mod model;

use std::fmt;
use std::path::Path;

pub use decode::parse_duration;
pub use model::*;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What is wrong.
    pub reason: String,
}

/// Every problem found in one config file; displays as `FILE:LINE:COL: reason` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file name as given.
    pub file: String,
    /// Sorted by position.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, e.line, e.col, e.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<(Config, String), ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError { line: 1, col: 1, reason: format!("cannot read: {e}") }],
    })?;
    let cfg = parse(&text, &file)?;
    Ok((cfg, text))
}

/// Parses and validates config text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let mut errs = decode::Errors::default();
    let (root, syntax) = toml::de::DeTable::parse_recoverable(text);
    for e in syntax {
        errs.0.push((e.span().unwrap_or(0..0), e.message().to_string()));
    }
    let base = Path::new(file).parent().unwrap_or_else(|| Path::new(""));
    let cfg = if errs.0.is_empty() { decode::decode(root.get_ref(), root.span(), base, &mut errs) } else { None };
    if let Some(cfg) = &cfg {
        // Spans of cross-reference errors are found by index; skip when an entry failed to decode.
        if decode::aligned(cfg, root.get_ref()) {
            decode::cross_check(cfg, root.get_ref(), root.span(), &mut errs);
        }
    }
    match cfg {
        Some(cfg) if errs.0.is_empty() => Ok(cfg),
        _ => {
            let mut errors: Vec<ConfigError> = errs
                .0
                .into_iter()
                .map(|(span, reason)| {
                    let (line, col) = line_col(text, span.start);
                    ConfigError { line, col, reason }
                })
                .collect();
            errors.sort_by_key(|e| (e.line, e.col));
            errors.dedup();
            Err(ConfigErrors { file: file.to_string(), errors })
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
