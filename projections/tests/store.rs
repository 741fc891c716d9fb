//! The read side against a real Postgres with PostGIS (a database per test): the
//! promises about cost that a timing cannot keep on a shared machine, kept instead by
//! what Postgres does — the plans the api's queries get as `prism_app`, and the number
//! of statements a projection batch sends whatever its size.

mod batches;
mod plans;
