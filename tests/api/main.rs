//! One integration binary: the real server over HTTP, a real SMTP server in
//! the test process, a fresh database per test. Set TIDINGS_TEST_DATABASE_URL
//! (a PostgreSQL server URL) to run the whole suite on PostgreSQL.

mod support {
    pub mod dns;
    pub mod http_proxy;
    pub mod proxy;
    pub mod smtp;
    pub mod tls_smtp;
}
mod helpers;

mod admin;
mod archive;
mod bounces;
mod brand;
mod browser;
mod cli_setup;
mod compose;
mod csv;
mod deploy;
mod digests;
mod dkim_keys;
mod doctor;
mod editorial;
mod email_render;
mod faults;
mod feed;
mod feed_fidelity;
mod feedback;
mod foundation;
mod hostile;
mod layers;
mod login_memory;
mod migration;
mod openapi;
mod preferences;
mod privacy;
mod send_safety;
mod signup;
mod smtp_selftest;
mod smtp_tls;
mod stats;
mod timestamps;
