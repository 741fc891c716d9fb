//! Market statistics kept as running totals: each cell stores its counts and the exact
//! sums of its comps' figures, and the averages are generated from them. A batch moves
//! a cell by the difference its comps make instead of recomputing the cell from all
//! its comps, so the cost of a batch no longer grows with the size of the cells it
//! touches. Totals are stored with trailing zeros trimmed, so every batching of the
//! same events gives the same rows. The table is rebuilt from the comps here (and in
//! `down`, back to computed columns).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Row-level security and the grant, as migration 000007 set them.
const SECURITY: [&str; 3] = [
    "ALTER TABLE market_stats ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY market_stats_org_isolation ON market_stats FOR SELECT TO prism_app \
     USING (org_id = current_setting('prism.org_id', true))",
    "GRANT SELECT ON market_stats TO prism_app",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"CREATE TABLE market_stats_totals (
                    org_id                 text    NOT NULL,
                    submarket              text    NOT NULL,
                    property_type          text    NOT NULL,
                    quarter_start          date    NOT NULL,
                    lease_count            integer NOT NULL,
                    sale_count             integer NOT NULL,
                    cap_rate_count         integer NOT NULL,
                    leased_area_total      numeric NOT NULL,
                    starting_rent_total    numeric NOT NULL,
                    effective_rent_total   numeric NOT NULL,
                    sale_volume_total      numeric NOT NULL,
                    price_psf_total        numeric NOT NULL,
                    cap_rate_total         numeric NOT NULL,
                    leased_area_sqft       numeric GENERATED ALWAYS AS
                        (CASE WHEN lease_count > 0 THEN leased_area_total END) STORED,
                    avg_starting_rent_psf  numeric GENERATED ALWAYS AS
                        (round(starting_rent_total / NULLIF(lease_count, 0), 2)) STORED,
                    avg_effective_rent_psf numeric GENERATED ALWAYS AS
                        (round(effective_rent_total / NULLIF(lease_count, 0), 2)) STORED,
                    sale_volume            numeric GENERATED ALWAYS AS
                        (CASE WHEN sale_count > 0 THEN sale_volume_total END) STORED,
                    avg_price_psf          numeric GENERATED ALWAYS AS
                        (round(price_psf_total / NULLIF(sale_count, 0), 2)) STORED,
                    avg_cap_rate_pct       numeric GENERATED ALWAYS AS
                        (round(cap_rate_total / NULLIF(cap_rate_count, 0), 2)) STORED
                )"#,
                r#"INSERT INTO market_stats_totals (org_id, submarket, property_type, quarter_start,
                       lease_count, sale_count, cap_rate_count, leased_area_total,
                       starting_rent_total, effective_rent_total, sale_volume_total,
                       price_psf_total, cap_rate_total)
                   SELECT c.org_id, coalesce(b.submarket, ''), b.property_type,
                          date_trunc('quarter', c.deal_date)::date,
                          count(*) FILTER (WHERE c.kind = 'lease'),
                          count(*) FILTER (WHERE c.kind = 'sale'),
                          count(c.cap_rate_pct) FILTER (WHERE c.kind = 'sale'),
                          trim_scale(coalesce(sum(c.leased_area_sqft) FILTER (WHERE c.kind = 'lease'), 0)),
                          trim_scale(coalesce(sum(c.starting_rent_psf) FILTER (WHERE c.kind = 'lease'), 0)),
                          trim_scale(coalesce(sum(c.net_effective_rent_psf) FILTER (WHERE c.kind = 'lease'), 0)),
                          trim_scale(coalesce(sum(c.sale_price) FILTER (WHERE c.kind = 'sale'), 0)),
                          trim_scale(coalesce(sum(c.price_psf) FILTER (WHERE c.kind = 'sale'), 0)),
                          trim_scale(coalesce(sum(c.cap_rate_pct) FILTER (WHERE c.kind = 'sale'), 0))
                     FROM comps c JOIN buildings b ON b.id = c.building_id
                    WHERE NOT c.retracted
                    GROUP BY 1, 2, 3, 4"#,
                "DROP TABLE market_stats",
                "ALTER TABLE market_stats_totals RENAME TO market_stats",
                "ALTER TABLE market_stats ADD CONSTRAINT market_stats_pkey \
                 PRIMARY KEY (org_id, submarket, property_type, quarter_start)",
                SECURITY[0],
                SECURITY[1],
                SECURITY[2],
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"CREATE TABLE market_stats_computed (
                    org_id                 text    NOT NULL,
                    submarket              text    NOT NULL,
                    property_type          text    NOT NULL,
                    quarter_start          date    NOT NULL,
                    lease_count            integer NOT NULL,
                    leased_area_sqft       numeric,
                    avg_starting_rent_psf  numeric,
                    avg_effective_rent_psf numeric,
                    sale_count             integer NOT NULL,
                    sale_volume            numeric,
                    avg_price_psf          numeric,
                    avg_cap_rate_pct       numeric
                )"#,
                r#"INSERT INTO market_stats_computed
                   SELECT c.org_id, coalesce(b.submarket, ''), b.property_type,
                          date_trunc('quarter', c.deal_date)::date,
                          count(*) FILTER (WHERE c.kind = 'lease'),
                          sum(c.leased_area_sqft),
                          round(avg(c.starting_rent_psf), 2),
                          round(avg(c.net_effective_rent_psf), 2),
                          count(*) FILTER (WHERE c.kind = 'sale'),
                          sum(c.sale_price),
                          round(avg(c.price_psf), 2),
                          round(avg(c.cap_rate_pct), 2)
                     FROM comps c JOIN buildings b ON b.id = c.building_id
                    WHERE NOT c.retracted
                    GROUP BY 1, 2, 3, 4"#,
                "DROP TABLE market_stats",
                "ALTER TABLE market_stats_computed RENAME TO market_stats",
                "ALTER TABLE market_stats ADD CONSTRAINT market_stats_pkey \
                 PRIMARY KEY (org_id, submarket, property_type, quarter_start)",
                SECURITY[0],
                SECURITY[1],
                SECURITY[2],
            ],
        )
        .await
    }
}
