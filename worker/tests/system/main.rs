//! System tests of the read side against real Postgres (a database per test) and Redis
//! (a namespace per test, or a private server): the api and the worker run for real —
//! `prism-api` as a process, the worker in-process or as `prism-worker` processes that
//! are killed with SIGKILL. Every test that changes data ends with "projections equal a
//! fresh rebuild". One binary; shared support comes from `testkit`.

mod cli;
mod delivery;
mod faults;
mod helpers;
mod metrics;
mod queries;
mod rebuilds;
mod restore;
