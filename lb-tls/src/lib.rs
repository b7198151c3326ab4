//! # lb-tls: TLS termination for lbd (next issue)
//!
//! This crate will hold `https` listeners on rustls with the `ring` provider only: certificates
//! chosen by SNI, named TLS policies, session tickets shared by workers (and nodes), mTLS with
//! the client identity forwarded, certificate reload without restart, upstream TLS, and the
//! ClientHello peek for TLS passthrough. It is part of the workspace now so that the listener
//! kinds in `lb-core`'s config and the accept loop in `lb-tcp` are laid out to take it.
#![forbid(unsafe_code)]
