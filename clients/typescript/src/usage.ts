// Type-checked use of the client (`npm run typecheck`, under `strict`): what a front
// end writes, so that a change of the document that breaks it fails the check.
import { prismClient, type Comp, type Problem, type ProblemType } from "./index";

/** Every problem type handled: a new one does not compile until it is handled. */
export function explain(problem: Problem): string {
  const type: ProblemType = problem.type;
  switch (type) {
    case "urn:prism:problem:validation-failed":
    case "urn:prism:problem:malformed-request":
      return problem.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
    case "urn:prism:problem:version-conflict":
      return `changed meanwhile; now at version ${problem.current_version ?? "?"}`;
    case "urn:prism:problem:rate-limited":
    case "urn:prism:problem:service-unavailable":
      return "try again shortly";
    case "urn:prism:problem:unauthenticated":
    case "urn:prism:problem:forbidden":
    case "urn:prism:problem:cross-origin-refused":
    case "urn:prism:problem:not-found":
    case "urn:prism:problem:method-not-allowed":
    case "urn:prism:problem:payload-too-large":
    case "urn:prism:problem:unsupported-media-type":
    case "urn:prism:problem:idempotency-key-reused":
    case "urn:prism:problem:unknown-building":
    case "urn:prism:problem:already-exists":
    case "urn:prism:problem:building-archived":
    case "urn:prism:problem:building-not-archived":
    case "urn:prism:problem:comp-retracted":
    case "urn:prism:problem:comp-already-verified":
    case "urn:prism:problem:concurrent-modification":
    case "urn:prism:problem:rebuild-in-progress":
    case "urn:prism:problem:rebuild-finished":
    case "urn:prism:problem:internal":
      return problem.detail ?? problem.title;
    default: {
      const unhandled: never = type;
      return unhandled;
    }
  }
}

/** A comp's headline figure, by its kind: `kind` narrows the comp to a lease, whose
 * `lease` is there, or a sale, whose `sale` is. */
export function headline(comp: Comp): string {
  switch (comp.kind) {
    case "lease":
      return `${comp.lease.tenant} at ${comp.lease.starting_rent_psf}/sf (${comp.lease.lease_type})`;
    case "sale":
      return `sold for ${comp.sale.sale_price}`;
  }
}

/** Register a building, record a lease in it, read both back. */
export async function walkthrough(baseUrl: string, token: string): Promise<string> {
  const api = prismClient(baseUrl, () => token);
  const registered = await api.POST("/v1/buildings", {
    params: { header: { "Idempotency-Key": crypto.randomUUID() } },
    body: {
      name: "One Vanderbilt",
      address: { street: "1 Vanderbilt Ave", city: "New York", country: "US" },
      location: { lat: 40.7527, lon: -73.9787 },
      property_type: "office",
      rentable_area_sqft: 1750000,
    },
  });
  if (registered.error) {
    return explain(registered.error);
  }
  const building = registered.data;
  const leased = await api.POST("/v1/comps/lease", {
    body: {
      building_id: building.id,
      tenant: "Globex",
      leased_area_sqft: "12500",
      starting_rent_psf: 85.5,
      lease_type: "gross",
      term_months: 120,
      commencement_date: "2026-01-01",
    },
  });
  if (leased.error) {
    return explain(leased.error);
  }
  // The comp's position: every read given it reflects the comp (or says it lags).
  const after = leased.data.position;
  const read = await api.GET("/v1/comps/{id}", {
    params: { path: { id: leased.data.id }, query: { expand: "building", min_position: after } },
  });
  if (read.error) {
    return explain(read.error);
  }
  const page = await api.GET("/v1/buildings", {
    params: { query: { ids: building.id, property_type: "office", min_position: after } },
  });
  if (page.response.headers.get("Projection-Lagging") === "true") {
    return "the read side is behind; try again";
  }
  const names = page.data?.items.map((item) => item.name) ?? [];
  return `${headline(read.data)} in ${read.data.building?.name ?? "?"}; listed: ${names.join(", ")}`;
}
