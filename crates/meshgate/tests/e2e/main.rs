//! End-to-end tests: the real `meshgate` binary, real sockets, real backends on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod cli;
mod controlplane;
mod explain;
mod gateway;
mod meshroutes;
mod policies;
mod support;
mod tls;
mod tracing;
mod ui;
