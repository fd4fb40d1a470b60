//! End-to-end tests of the HTTP API (SPEC §6) against the real `kluis`
//! binary, on SQLite + files and on PostgreSQL + SeaweedFS; one file per
//! resource, helpers in `helpers.rs`.

#[path = "../support/kluis.rs"]
mod kluis_proc;
#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod helpers;

mod access;
mod breaches;
mod documents;
mod download;
mod keys;
mod privacy;
mod purge;
mod resilience;
mod retention;
mod search;
mod session;
mod transport;
mod users;
mod web;
