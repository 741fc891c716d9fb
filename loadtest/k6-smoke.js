// Load-smoke release gate (k6). The same scenario and SLO thresholds as
// `prism-loadtest` (loadtest/src/main.rs), which `make load-smoke` runs where k6 is not
// installed. docs/ops/k6-smoke-test.md explains the thresholds and how to read a run.
//
//   BASE_URL=https://api.example PRISM_TOKEN=... k6 run loadtest/k6-smoke.js
import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = (__ENV.BASE_URL || 'http://localhost:8080').replace(/\/$/, '');
const TOKEN = __ENV.PRISM_TOKEN;
const VUS = Number(__ENV.VUS || 5);
const DURATION = `${Number(__ENV.DURATION_SECONDS || 20)}s`;

export const options = {
  vus: VUS,
  duration: DURATION,
  thresholds: {
    // The SLOs; keep them equal to prism-loadtest's defaults.
    http_req_duration: [`p(95)<${Number(__ENV.SLO_P95_MS || 500)}`],
    http_req_failed: [`rate<${Number(__ENV.SLO_ERROR_RATE || 0.01)}`],
    http_reqs: [`rate>=${Number(__ENV.SLO_MIN_RPS || 20)}`],
  },
};

const headers = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };

// Each user registers one building, then loops over the SPA's calls.
export function setup() {
  if (!TOKEN) throw new Error('PRISM_TOKEN is required');
}

let building = null;
let round = 0;

export default function () {
  if (building === null) {
    const created = http.post(`${BASE_URL}/v1/buildings`, JSON.stringify({
      name: `Load Tower ${__VU}`,
      address: { street: '1 Load St', city: 'Austin', country: 'US' },
      location: { lat: 30.2672, lon: -97.7431 },
      property_type: 'office',
      rentable_area_sqft: 100000,
      submarket: 'CBD',
    }), { headers });
    check(created, { 'building registered': (r) => r.status === 201 });
    building = created.json('id');
  }
  http.get(`${BASE_URL}/v1/buildings?limit=20`, { headers });
  http.get(`${BASE_URL}/v1/buildings/${building}`, { headers });
  if (round % 5 === 0) {
    const lease = http.post(`${BASE_URL}/v1/comps/lease`, JSON.stringify({
      building_id: building, tenant: 'Load Co', leased_area_sqft: 2500,
      starting_rent_psf: '48.50', lease_type: 'gross', term_months: 36,
      commencement_date: '2026-01-01',
    }), { headers });
    check(lease, { 'lease recorded': (r) => r.status === 201 });
  }
  http.get(`${BASE_URL}/v1/comps?building_id=${building}`, { headers });
  http.get(`${BASE_URL}/v1/market/stats`, { headers });
  round += 1;
}
