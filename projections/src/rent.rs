//! Rent metrics derived from a comp's terms, exactly (decimals, never `f64`). The
//! definitions are the ones in docs/read-side.md; analysts compare these numbers
//! across buildings, so they must not depend on how or when they were computed.

use rust_decimal::{Decimal, RoundingStrategy};

/// Places kept in derived money figures (per-square-foot amounts): cents.
const MONEY_PLACES: u32 = 2;

/// Rounds to cents, half away from zero, and always shows two places (`50.00`).
fn round_money(value: Decimal) -> Decimal {
    let mut rounded =
        value.round_dp_with_strategy(MONEY_PLACES, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(MONEY_PLACES);
    rounded
}

/// The lease terms the net effective rent depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseEconomics {
    /// Rent per square foot per year in the first lease year.
    pub starting_rent_psf: Decimal,
    /// Lease term in months (> 0).
    pub term_months: u32,
    /// Months at the start of the term with no rent (< term).
    pub free_rent_months: u32,
    /// Tenant-improvement allowance per square foot, paid by the landlord.
    pub ti_allowance_psf: Decimal,
    /// Annual escalation in percent, compounding at each lease anniversary.
    pub escalation_pct: Decimal,
}

/// Net effective rent per square foot per year: the rent actually paid over the term
/// (starting rent escalated at each anniversary, nothing during free-rent months),
/// less the TI allowance, spread evenly over the term in years. Straight-line, not
/// discounted. Rounded to cents, half away from zero.
pub fn net_effective_rent_psf(lease: &LeaseEconomics) -> Decimal {
    if lease.term_months == 0 {
        return Decimal::ZERO;
    }
    let twelve = Decimal::from(12);
    let growth = Decimal::ONE + lease.escalation_pct / Decimal::from(100);
    let mut annual_rent = lease.starting_rent_psf;
    let mut paid = Decimal::ZERO;
    for month in 0..lease.term_months {
        if month > 0 && month % 12 == 0 {
            annual_rent *= growth;
        }
        if month >= lease.free_rent_months {
            paid += annual_rent / twelve;
        }
    }
    let years = Decimal::from(lease.term_months) / twelve;
    round_money((paid - lease.ti_allowance_psf) / years)
}

/// Arithmetic mean, rounded to cents; `None` for no values.
pub fn mean(values: &[Decimal]) -> Option<Decimal> {
    if values.is_empty() {
        return None;
    }
    let sum: Decimal = values.iter().sum();
    Some(round_money(sum / Decimal::from(values.len())))
}

/// Median (the mean of the middle two for an even count), rounded to cents.
pub fn median(values: &[Decimal]) -> Option<Decimal> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let middle = sorted.len() / 2;
    let value = if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / Decimal::from(2)
    };
    Some(round_money(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).expect("decimal")
    }

    fn lease(rent: &str, term: u32, free: u32, ti: &str, escalation: &str) -> LeaseEconomics {
        LeaseEconomics {
            starting_rent_psf: d(rent),
            term_months: term,
            free_rent_months: free,
            ti_allowance_psf: d(ti),
            escalation_pct: d(escalation),
        }
    }

    #[test]
    fn a_flat_lease_without_concessions_nets_its_rent() {
        assert_eq!(
            net_effective_rent_psf(&lease("50", 60, 0, "0", "0")),
            d("50.00")
        );
    }

    #[test]
    fn free_rent_and_ti_reduce_the_net_effective_rent() {
        // 10 years at $60, 12 months free, $40 TI: (9 × 60 − 40) / 10 = 50.
        assert_eq!(
            net_effective_rent_psf(&lease("60", 120, 12, "40", "0")),
            d("50.00")
        );
    }

    #[test]
    fn escalations_compound_at_each_anniversary() {
        // 3 years at $100 rising 10 % a year: (100 + 110 + 121) / 3 = 110.333…
        assert_eq!(
            net_effective_rent_psf(&lease("100", 36, 0, "0", "10")),
            d("110.33")
        );
        // A 6-month free period in year one only removes year-one rent.
        // (50 + 110 + 121) / 3 = 93.666…
        assert_eq!(
            net_effective_rent_psf(&lease("100", 36, 6, "0", "10")),
            d("93.67")
        );
    }

    #[test]
    fn a_partial_final_year_counts_by_the_month() {
        // 18 months: 12 at $24, 6 at $24 × 1.05 = 25.2 → (24 + 12.6) / 1.5 = 24.4.
        assert_eq!(
            net_effective_rent_psf(&lease("24", 18, 0, "0", "5")),
            d("24.40")
        );
    }

    #[test]
    fn mean_and_median_are_exact() {
        let values = [d("10"), d("40"), d("20"), d("30")];
        assert_eq!(mean(&values), Some(d("25.00")));
        assert_eq!(median(&values), Some(d("25.00")));
        assert_eq!(median(&values[..3]), Some(d("20.00")));
        assert_eq!(median(&[]), None);
    }
}
