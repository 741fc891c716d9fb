// The browser test's page script (scripts/browser-test.sh): what a single-page app on
// another origin does with the typed client, one exported step at a time. run.mjs calls
// each step through `window.prism` and checks the network around it (preflights, the
// 304); each step checks here what the page itself can read — statuses, bodies, the
// problems' fields and the CORS-exposed headers — and throws when any is wrong.
// Compiled by the client's own tsc under its `strict` settings (tsconfig.json), so a
// step that reads a field the OpenAPI document does not promise does not compile.
import { prismClient, type paths, type Problem, type ProblemType } from "../../typescript/src/index.ts";

type Api = ReturnType<typeof prismClient>;
// openapi-fetch infers its options generically, which lets an unknown query parameter
// through; a query written as the operation's own type is checked for excess fields.
type CompsQuery = NonNullable<paths["/v1/comps"]["get"]["parameters"]["query"]>;
type BuildingsQuery = NonNullable<paths["/v1/buildings"]["get"]["parameters"]["query"]>;
type DetailQuery = NonNullable<paths["/v1/buildings/{id}"]["get"]["parameters"]["query"]>;
type Facts = Record<string, string | number | boolean | null | string[]>;

interface Recorded {
  id: string;
  version: number;
  position: number;
}

let api: Api | undefined;
let building: Recorded | undefined;
let comp: Recorded | undefined;

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(what);
  }
}

function client(): Api {
  check(api !== undefined, "configure() was not called");
  return api;
}

function registered(): Recorded {
  check(building !== undefined, "no building was registered");
  return building;
}

/** A problem as the page reads it: its type, status and media type all as expected. */
function expectProblem(
  problem: Problem | undefined,
  response: Response,
  type: ProblemType,
  status: number,
): Problem {
  check(response.status === status, `expected ${status}, got ${response.status}`);
  check(problem !== undefined, `a ${status} without a problem body`);
  check(problem.type === type, `expected ${type}, got ${problem.type}`);
  check(problem.status === status, `the problem's status is ${problem.status}`);
  const media = response.headers.get("Content-Type") ?? "";
  check(media.startsWith("application/problem+json"), `problem served as ${media}`);
  return problem;
}

/** `"default";r=3;t=52` → 3 (the `RateLimit` header's remaining requests). */
function remaining(response: Response): number | null {
  const value = response.headers.get("RateLimit");
  const match = value === null ? null : /;r=(\d+)/.exec(value);
  return match?.[1] === undefined ? null : Number(match[1]);
}

export const steps = {
  /** The page's origin and the API's differ: every call below is cross-origin. */
  configure(baseUrl: string, token: string): Facts {
    api = prismClient(baseUrl, () => token);
    check(new URL(baseUrl).origin !== location.origin, "the page and the API share an origin");
    return { origin: location.origin, api: new URL(baseUrl).origin };
  },

  /** POST with a JSON body and an Idempotency-Key: a preflighted request. */
  async register(): Promise<Facts> {
    const { data, error, response } = await client().POST("/v1/buildings", {
      params: { header: { "Idempotency-Key": crypto.randomUUID() } },
      body: {
        name: "Browser Tower",
        address: { street: "1 Main St", city: "Austin", country: "US" },
        location: { lat: 30.2672, lon: -97.7431 },
        property_type: "office",
        rentable_area_sqft: 250000,
      },
    });
    check(error === undefined, `register refused: ${error?.type} ${error?.detail}`);
    check(response.status === 201, `register answered ${response.status}`);
    const location = response.headers.get("Location");
    check(location?.endsWith(data.id) === true, `Location not readable or wrong: ${location}`);
    check(response.headers.get("ETag") !== null, "ETag not readable");
    building = { id: data.id, version: data.version, position: data.position };
    return { id: data.id, version: data.version, position: data.position, url: response.url };
  },

  /** A lease comp in that building; its `position` is what the lists wait for. */
  async recordComp(): Promise<Facts> {
    const { id } = registered();
    const { data, error, response } = await client().POST("/v1/comps/lease", {
      params: { header: { "Idempotency-Key": crypto.randomUUID() } },
      body: {
        building_id: id,
        tenant: "Globex",
        leased_area_sqft: "12500",
        starting_rent_psf: 85.5,
        lease_type: "gross",
        term_months: 120,
        commencement_date: "2026-01-01",
      },
    });
    check(error === undefined, `record refused: ${error?.type} ${error?.detail}`);
    check(response.status === 201, `record answered ${response.status}`);
    check(data.position > registered().position, "the comp's position is not after the building's");
    comp = { id: data.id, version: data.version, position: data.position };
    return { id: data.id, position: data.position, url: response.url };
  },

  /** The building's comps as the read side has them now, without `min_position`. */
  async compsNow(): Promise<Facts> {
    check(comp !== undefined, "no comp was recorded");
    const query: CompsQuery = { building_id: registered().id };
    const { data, error } = await client().GET("/v1/comps", { params: { query } });
    check(error === undefined, `comps refused: ${error?.type} ${error?.detail}`);
    const ids = data.items.map((item) => item.id);
    return { listed: ids.includes(comp.id) };
  },

  /** Both lists reflect the comp on their first read: `min_position`, no polling. */
  async lists(): Promise<Facts> {
    check(comp !== undefined, "no comp was recorded");
    const { id } = registered();
    const minPosition = comp.position;
    const compsQuery: CompsQuery = { building_id: id, min_position: minPosition };
    const started = performance.now();
    const comps = await client().GET("/v1/comps", { params: { query: compsQuery } });
    const compsMs = Math.round(performance.now() - started);
    check(comps.error === undefined, `comps refused: ${comps.error?.type} ${comps.error?.detail}`);
    check(comps.response.headers.get("Projection-Lagging") === null, "comps: Projection-Lagging");
    const compIds = comps.data.items.map((item) => item.id);
    check(compIds.includes(comp.id), `the comp is not listed on the first read: ${compIds.join(",")}`);
    const buildingsQuery: BuildingsQuery = { ids: id, min_position: minPosition };
    const buildings = await client().GET("/v1/buildings", { params: { query: buildingsQuery } });
    check(buildings.error === undefined, `buildings refused: ${buildings.error?.type}`);
    check(buildings.response.headers.get("Projection-Lagging") === null, "buildings: Projection-Lagging");
    const buildingIds = buildings.data.items.map((item) => item.id);
    check(buildingIds.includes(id), `the building is not listed on the first read: ${buildingIds.join(",")}`);
    return { comps: comps.response.url, buildings: buildings.response.url, minPosition, compsMs };
  },

  /**
   * The detail twice, as a page does: the browser's own HTTP cache revalidates it
   * (`private, no-cache` + `ETag`), the API answers 304, the page gets the cached body.
   * The page sends no If-None-Match of its own; the two reads have the same URL.
   */
  async revalidate(): Promise<Facts> {
    const { id } = registered();
    check(comp !== undefined, "no comp was recorded");
    // Both reads wait for the comp, so its statistics cannot change between them.
    const query: DetailQuery = { min_position: comp.position };
    const read = () => client().GET("/v1/buildings/{id}", { params: { path: { id }, query } });
    const first = await read();
    check(first.error === undefined, `detail refused: ${first.error?.type}`);
    const etag = first.response.headers.get("ETag");
    check(etag !== null, "ETag not readable");
    const cacheControl = first.response.headers.get("Cache-Control") ?? "";
    check(cacheControl.includes("no-cache"), `Cache-Control is ${cacheControl}`);
    const second = await read();
    check(second.error === undefined, `second detail refused: ${second.error?.type}`);
    check(second.response.status === 200, `the page got ${second.response.status}, not the cached 200`);
    const again = second.response.headers.get("ETag");
    check(again === etag, `the second read has ETag ${again}, the first ${etag}`);
    check(
      JSON.stringify(second.data) === JSON.stringify(first.data),
      "the revalidated body differs from the first",
    );
    check(second.data.id === id, "the detail is another building");
    return { url: first.response.url, etag, name: second.data.name };
  },

  /** PATCH with If-Match (preflighted): applied once, then the stale version is a 409. */
  async conflict(): Promise<Facts> {
    const { id, version } = registered();
    const patch = (submarket: string) =>
      client().PATCH("/v1/buildings/{id}", {
        params: { path: { id }, header: { "If-Match": `"${version}"` } },
        body: { submarket },
      });
    const applied = await patch("CBD");
    check(applied.error === undefined, `the first PATCH was refused: ${applied.error?.type}`);
    check(applied.data.version === version + 1, `version ${applied.data.version} after the PATCH`);
    const stale = await patch("Domain");
    const problem = expectProblem(stale.error, stale.response, "urn:prism:problem:version-conflict", 409);
    check(
      problem.current_version === version + 1,
      `current_version is ${problem.current_version}, expected ${version + 1}`,
    );
    return { url: stale.response.url, currentVersion: problem.current_version, staleIfMatch: `"${version}"` };
  },

  /** A domain refusal: more months of free rent than the lease's term is a 422. */
  async invalid(): Promise<Facts> {
    const { id } = registered();
    const { error, response } = await client().POST("/v1/comps/lease", {
      params: { header: { "Idempotency-Key": crypto.randomUUID() } },
      body: {
        building_id: id,
        tenant: "Initech",
        leased_area_sqft: 5000,
        starting_rent_psf: "60.00",
        lease_type: "gross",
        term_months: 12,
        free_rent_months: 24,
        commencement_date: "2026-03-01",
      },
    });
    const problem = expectProblem(error, response, "urn:prism:problem:validation-failed", 422);
    const fields = problem.errors.map((entry) => entry.field);
    check(fields.includes("free_rent_months"), `errors name ${fields.join(",")}, not free_rent_months`);
    const messages = problem.errors.map((entry) => `${entry.field}: ${entry.message}`);
    return { fields, messages };
  },

  /** From an origin not in ALLOWED_ORIGINS: the browser refuses, fetch rejects. */
  async refused(): Promise<Facts> {
    try {
      const { response } = await client().GET("/v1/buildings", {
        params: { query: { limit: 1 } },
      });
      return { rejected: false, status: response.status };
    } catch (error) {
      check(error instanceof TypeError, `fetch failed with ${String(error)}, not a TypeError`);
      return { rejected: true, message: error.message };
    }
  },

  /**
   * Calls until 429 (uncached: a 304 is not counted against the budget). The
   * `RateLimit` header counts down to 0 first; the 429's `Retry-After` is readable.
   */
  async rateLimited(limit: number): Promise<Facts> {
    const { id } = registered();
    let left: number | null = null;
    for (let call = 1; call <= limit + 1; call += 1) {
      const { error, response } = await client().GET("/v1/buildings/{id}/history", {
        params: { path: { id } },
        cache: "no-store",
      });
      if (response.status !== 429) {
        check(error === undefined, `call ${call} answered ${response.status}`);
        left = remaining(response);
        check(left !== null, `RateLimit not readable: ${response.headers.get("RateLimit")}`);
        continue;
      }
      const problem = expectProblem(error, response, "urn:prism:problem:rate-limited", 429);
      check(left === 0, `429 while the previous answer said ${left} left`);
      const retryAfter = response.headers.get("Retry-After");
      check(retryAfter !== null, "Retry-After is not readable by the page");
      const seconds = Number(retryAfter);
      check(Number.isInteger(seconds) && seconds >= 1 && seconds <= 60, `Retry-After: ${retryAfter}`);
      const policy = response.headers.get("RateLimit-Policy");
      check(policy?.includes(`q=${limit}`) === true, `RateLimit-Policy: ${policy}`);
      return { call, retryAfter: seconds, policy, detail: problem.detail ?? null, url: response.url };
    }
    throw new Error(`no 429 after ${limit + 1} calls`);
  },
};

export type Steps = typeof steps;

declare global {
  interface Window {
    prism: Steps;
  }
}

window.prism = steps;
const status = document.getElementById("status");
if (status !== null) {
  status.textContent = "ready";
}
