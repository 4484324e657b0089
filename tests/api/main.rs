//! Black-box tests of the accounts, sessions and HTTP-convention parts of the
//! API (`docs/api.md`).
//!
//! Every test boots the real server on `127.0.0.1:0` with a fresh database
//! (SQLite in a temp dir, or a fresh PostgreSQL database when
//! `PARLEY_TEST_DATABASE_URL` is set) and talks plain HTTP to it. One binary,
//! so the crate links once; one module per area.

mod admin;
mod auth;
mod blocking;
mod chat;
mod email_verification;
mod helpers;
mod hostile_clients;
mod http_conventions;
mod live_revocation;
mod login;
mod mailbox;
mod messages;
mod operations;
mod password_reset;
mod people;
mod profile;
mod prometheus;
mod rate_limits;
mod refresh_and_logout;
mod resume;
mod rooms;
mod scale_and_supervision;
mod session_policy;
mod sessions;
mod signing;
mod signing_keys;
mod smtp;
mod tokens;
mod two_factor;
mod typing_presence;
mod ws_client;
mod ws_limits;
mod ws_protocol;
