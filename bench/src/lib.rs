//! The part of lbd's benchmark instrument that tests use too: an HTTP/3 client on quiche, a QUIC
//! stack independent of lbd's own (quinn, rustls). The rest of `lb-bench` is its binary.

pub mod quiche_client;
