//! Proof that a projection's rows are what the log says: each [`Check`] folds the
//! event log up to a cursor with plain SQL — independently of the projector's code —
//! and reads the projection's tables, both as per-organisation row counts and an
//! order-independent digest (a sum of per-row hashes). A rebuild swaps in only what
//! passes every check of its projection.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use sqlx::PgConnection;

use crate::log::LogCursor;
use crate::projector::Projector;

/// What a failed check found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("check {check} failed: {differences}")]
pub struct VerificationFailure {
    pub check: &'static str,
    pub differences: String,
}

type Summary = BTreeMap<String, (i64, Decimal)>;

async fn summary(
    conn: &mut PgConnection,
    sql: &str,
    cursor: &LogCursor,
) -> Result<Summary, sqlx::Error> {
    let rows: Vec<(Option<String>, Option<i64>, Option<Decimal>)> = sqlx::query_as(sql)
        .bind(&cursor.transaction_id)
        .bind(cursor.position)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(org, count, digest)| {
            (
                org.unwrap_or_default(),
                (count.unwrap_or(0), digest.unwrap_or_default()),
            )
        })
        .collect())
}

/// Runs `projector`'s checks against the log up to `cursor`, in the caller's
/// transaction (its folds are temporary tables dropped at its end); the first failing
/// check, if any.
pub async fn verify(
    conn: &mut PgConnection,
    projector: &dyn Projector,
    cursor: &LogCursor,
) -> Result<Result<(), VerificationFailure>, sqlx::Error> {
    for fold in projector.folds() {
        sqlx::query(&format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS {}",
            fold.name, fold.query
        ))
        .bind(&cursor.transaction_id)
        .bind(cursor.position)
        .execute(&mut *conn)
        .await?;
    }
    for check in projector.checks() {
        let expected = summary(conn, check.expected, cursor).await?;
        let actual = summary(conn, check.actual, cursor).await?;
        if expected == actual {
            continue;
        }
        let orgs: std::collections::BTreeSet<&String> =
            expected.keys().chain(actual.keys()).collect();
        let mut differences = Vec::new();
        for org in orgs {
            let (want, have) = (expected.get(org), actual.get(org));
            if want != have {
                let describe = |side: Option<&(i64, Decimal)>| match side {
                    Some((rows, digest)) => format!("{rows} rows (digest {digest})"),
                    None => "no rows".to_owned(),
                };
                differences.push(format!(
                    "organisation {org}: the log gives {}, the projection has {}",
                    describe(want),
                    describe(have)
                ));
            }
        }
        let shown = differences.len().min(3);
        let mut text = differences[..shown].join("; ");
        if differences.len() > shown {
            text.push_str(&format!(
                "; and {} more organisations",
                differences.len() - shown
            ));
        }
        return Ok(Err(VerificationFailure {
            check: check.name,
            differences: text,
        }));
    }
    Ok(Ok(()))
}
