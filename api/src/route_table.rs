//! Which documented route a request is for: its template (`/v1/buildings/{id}`),
//! operation id, methods and query parameters, resolved from the OpenAPI document
//! itself, so the metrics' `path` label never depends on how the router names its
//! parameters and stays bounded, and the edge refuses what the document does not
//! offer (an unknown query parameter, a method the path does not have).

use std::collections::HashMap;

use poem::http::Method;

/// The `path` label of requests that match no route.
pub const UNMATCHED: &str = "unmatched";

/// Routes served outside the OpenAPI document, by path prefix.
const OTHER_ROUTES: [&str; 3] = ["/openapi.json", "/metrics", "/docs"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
}

/// One documented operation: its id and the query parameters it reads.
#[derive(Debug)]
struct Operation {
    id: String,
    query: Vec<String>,
}

/// One documented path: its template, segments, and operations by method.
#[derive(Debug)]
struct Route {
    template: String,
    segments: Vec<Segment>,
    operations: HashMap<String, Operation>,
    /// Its methods, as `Allow` lists them.
    allow: String,
}

/// Resolves a request to its route template (and operation id) from the OpenAPI
/// document, without depending on how the router names its parameters.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// The table of the document `spec` (OpenAPI JSON).
    pub fn from_spec(spec: &str) -> Self {
        let document: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes: Vec<Route> = document["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(template, item)| Route {
                        template: template.clone(),
                        segments: template
                            .split('/')
                            .skip(1)
                            .map(|segment| {
                                if segment.starts_with('{') {
                                    Segment::Parameter
                                } else {
                                    Segment::Literal(segment.to_owned())
                                }
                            })
                            .collect(),
                        operations: operations_of(item),
                        allow: {
                            let mut methods: Vec<String> = item
                                .as_object()
                                .into_iter()
                                .flat_map(|methods| methods.keys())
                                .map(|method| method.to_ascii_uppercase())
                                .collect();
                            methods.sort();
                            methods.join(", ")
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Literal segments win over parameters (`/v1/comps/lease` before `/v1/comps/{id}`).
        routes.sort_by_key(|route| {
            route
                .segments
                .iter()
                .filter(|s| **s == Segment::Parameter)
                .count()
        });
        Self { routes }
    }

    /// The template and, when the method has one, the operation id of `path`.
    pub fn resolve(&self, method: &Method, path: &str) -> ResolvedRoute<'_> {
        let parts = path.split('/').skip(1);
        let count = parts.clone().count();
        let documented = self.routes.iter().position(|route| {
            route.segments.len() == count
                && route
                    .segments
                    .iter()
                    .zip(parts.clone())
                    .all(|(segment, part)| match segment {
                        Segment::Literal(literal) => literal == part,
                        Segment::Parameter => !part.is_empty(),
                    })
        });
        let id = documented.unwrap_or_else(|| {
            let other = OTHER_ROUTES.into_iter().position(|other| {
                path.strip_prefix(other)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            });
            self.routes.len() + other.unwrap_or(OTHER_ROUTES.len())
        });
        self.route(id, method)
    }

    /// Route `id` (from [`Self::resolve`]) for `method`: a request's route looked up
    /// again without matching its path again.
    pub fn route(&self, id: usize, method: &Method) -> ResolvedRoute<'_> {
        match self.routes.get(id) {
            Some(route) => {
                let operation = route.operations.get(method.as_str());
                ResolvedRoute {
                    id,
                    template: route.template.as_str(),
                    operation: operation.map(|operation| operation.id.as_str()),
                    query: operation.map(|operation| operation.query.as_slice()),
                    allow: Some(route.allow.as_str()),
                }
            }
            None => ResolvedRoute {
                id,
                template: OTHER_ROUTES
                    .get(id - self.routes.len())
                    .copied()
                    .unwrap_or(UNMATCHED),
                operation: None,
                query: None,
                allow: None,
            },
        }
    }
}

/// A path item's operations by method, each with the query parameters it documents.
fn operations_of(item: &serde_json::Value) -> HashMap<String, Operation> {
    item.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(method, operation)| {
            let id = operation["operationId"].as_str()?.to_owned();
            let query = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|parameter| parameter["in"] == "query")
                .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
                .collect();
            Some((method.to_ascii_uppercase(), Operation { id, query }))
        })
        .collect()
}

/// A request's route: an id for the series cache, the template for the `path`
/// label, the operation id and its query parameters when the method has one, and the
/// path's methods (`Allow`) when it is a documented path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedRoute<'a> {
    pub id: usize,
    pub template: &'a str,
    pub operation: Option<&'a str>,
    pub query: Option<&'a [String]>,
    pub allow: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_their_templates_and_others_collapse() {
        let table = RouteTable::from_spec(&crate::spec::document());
        let id = "01a211de-85b1-74e2-ab37-c248cf58d5fa";
        let resolve = |method: &Method, path: &str| {
            let route = table.resolve(method, path);
            (
                route.template.to_owned(),
                route.operation.map(str::to_owned),
            )
        };
        assert_eq!(
            resolve(&Method::GET, &format!("/v1/buildings/{id}")),
            ("/v1/buildings/{id}".into(), Some("get_building".into()))
        );
        assert_eq!(
            resolve(&Method::POST, "/v1/comps/lease"),
            ("/v1/comps/lease".into(), Some("record_lease_comp".into()))
        );
        assert_eq!(
            resolve(&Method::POST, &format!("/v1/comps/{id}/verify")).0,
            "/v1/comps/{id}/verify"
        );
        assert_eq!(resolve(&Method::GET, "/docs/index.css").0, "/docs");
        assert_eq!(resolve(&Method::GET, "/docsy").0, UNMATCHED);
        assert_eq!(
            resolve(&Method::GET, "/wp-admin.php"),
            (UNMATCHED.into(), None)
        );
        assert_eq!(resolve(&Method::GET, "/v1/buildings/").0, UNMATCHED);
        let list = table.resolve(&Method::GET, "/v1/buildings");
        assert!(list
            .query
            .is_some_and(|query| query.iter().any(|name| name == "bbox")));
        assert_eq!(list.allow, Some("GET, POST"));
        let archive = table.resolve(&Method::GET, &format!("/v1/buildings/{id}/archive"));
        assert_eq!((archive.operation, archive.allow), (None, Some("POST")));
        assert_eq!(
            table.route(list.id, &Method::GET),
            list,
            "looked up again by id"
        );
        assert_ne!(
            table.resolve(&Method::GET, "/health").id,
            table.resolve(&Method::GET, "/ready").id,
            "each route its own series"
        );
    }
}
