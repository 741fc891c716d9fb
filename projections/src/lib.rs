//! Prism's read side: read-model schema, projectors (event → row changes),
//! checkpoints, the queries the api serves, and replay. Not built yet: the write side
//! and its event log (`events` with `position` and `transaction_id`) come first.
