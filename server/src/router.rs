//! Routing: a `match` on the path, then on the method.

use hyper::Method;

/// Every route the server knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /v1/citizens/{id}`.
    GetCitizen,
    /// `POST /v1/citizens:batchGet`.
    BatchGet,
    /// `POST /v1/citizens:verify`.
    Verify,
    /// `POST /v1/citizens:batchVerify`.
    BatchVerify,
    /// `POST /v1/qr:verify`: a chip card's QR text against the register.
    QrVerify,
    /// `GET /v1/statistics`: counts of living people.
    Statistics,
    /// `GET /v1/legacy-ids/{cmnd}`.
    Legacy,
    /// `POST /v1/biometrics:identify`.
    Identify,
    /// `GET /v1/snapshot`.
    SnapshotInfo,
    /// `POST /v1/admin/reload`.
    Reload,
    /// `GET /v1/openapi.yaml`.
    OpenApi,
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET /metrics`.
    Metrics,
    /// `POST /v1/citizens`: register a birth or first registration.
    Register,
    /// `PATCH /v1/citizens/{id}`: merge patch of changeable fields.
    Update,
    /// `POST /v1/citizens/{id}:recordDeath`.
    RecordDeath,
    /// `PUT /v1/citizens/{id}/biometrics/{modality}`.
    EnrolBiometric,
    /// `GET /v1/changes`: the change feed.
    Changes,
    /// `POST /v1/admin/compact`: fold the change log into a new generation.
    Compact,
    /// `POST /v1/citizens:match`: a dataset matched row by row, streamed.
    Match,
    /// Anything else (only used as a metrics label).
    Unmatched,
}

/// One route: its method and OpenAPI path template.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// The route.
    pub route: Route,
    /// The only method it answers.
    pub method: Method,
    /// The path as written in `openapi.yaml`.
    pub path: &'static str,
}

/// The routes, in the order of DESIGN.md's table.
pub const ROUTES: [RouteSpec; 21] = [
    RouteSpec {
        route: Route::GetCitizen,
        method: Method::GET,
        path: "/v1/citizens/{id}",
    },
    RouteSpec {
        route: Route::BatchGet,
        method: Method::POST,
        path: "/v1/citizens:batchGet",
    },
    RouteSpec {
        route: Route::Verify,
        method: Method::POST,
        path: "/v1/citizens:verify",
    },
    RouteSpec {
        route: Route::BatchVerify,
        method: Method::POST,
        path: "/v1/citizens:batchVerify",
    },
    RouteSpec {
        route: Route::QrVerify,
        method: Method::POST,
        path: "/v1/qr:verify",
    },
    RouteSpec {
        route: Route::Statistics,
        method: Method::GET,
        path: "/v1/statistics",
    },
    RouteSpec {
        route: Route::Legacy,
        method: Method::GET,
        path: "/v1/legacy-ids/{cmnd}",
    },
    RouteSpec {
        route: Route::Identify,
        method: Method::POST,
        path: "/v1/biometrics:identify",
    },
    RouteSpec {
        route: Route::SnapshotInfo,
        method: Method::GET,
        path: "/v1/snapshot",
    },
    RouteSpec {
        route: Route::Reload,
        method: Method::POST,
        path: "/v1/admin/reload",
    },
    RouteSpec {
        route: Route::OpenApi,
        method: Method::GET,
        path: "/v1/openapi.yaml",
    },
    RouteSpec {
        route: Route::Healthz,
        method: Method::GET,
        path: "/healthz",
    },
    RouteSpec {
        route: Route::Readyz,
        method: Method::GET,
        path: "/readyz",
    },
    RouteSpec {
        route: Route::Metrics,
        method: Method::GET,
        path: "/metrics",
    },
    RouteSpec {
        route: Route::Register,
        method: Method::POST,
        path: "/v1/citizens",
    },
    RouteSpec {
        route: Route::Update,
        method: Method::PATCH,
        path: "/v1/citizens/{id}",
    },
    RouteSpec {
        route: Route::RecordDeath,
        method: Method::POST,
        path: "/v1/citizens/{id}:recordDeath",
    },
    RouteSpec {
        route: Route::EnrolBiometric,
        method: Method::PUT,
        path: "/v1/citizens/{id}/biometrics/{modality}",
    },
    RouteSpec {
        route: Route::Changes,
        method: Method::GET,
        path: "/v1/changes",
    },
    RouteSpec {
        route: Route::Compact,
        method: Method::POST,
        path: "/v1/admin/compact",
    },
    RouteSpec {
        route: Route::Match,
        method: Method::POST,
        path: "/v1/citizens:match",
    },
];

impl Route {
    /// Number of labels (including [`Route::Unmatched`]).
    pub const COUNT: usize = 22;

    /// Dense index for metrics arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the route answers with personal data (records, IDs, yes/no
    /// about a person): such responses carry `Cache-Control: no-store`.
    pub fn is_personal_data(self) -> bool {
        matches!(
            self,
            Route::GetCitizen
                | Route::BatchGet
                | Route::Verify
                | Route::BatchVerify
                | Route::QrVerify
                | Route::Legacy
                | Route::Identify
                | Route::Register
                | Route::Update
                | Route::RecordDeath
                | Route::EnrolBiometric
                | Route::Changes
                | Route::Match
        )
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Route::GetCitizen => "get_citizen",
            Route::BatchGet => "batch_get",
            Route::Verify => "verify",
            Route::BatchVerify => "batch_verify",
            Route::QrVerify => "qr_verify",
            Route::Statistics => "statistics",
            Route::Legacy => "legacy",
            Route::Identify => "identify",
            Route::SnapshotInfo => "snapshot",
            Route::Reload => "reload",
            Route::OpenApi => "openapi",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::Register => "register",
            Route::Update => "update",
            Route::RecordDeath => "record_death",
            Route::EnrolBiometric => "enrol_biometric",
            Route::Changes => "changes",
            Route::Compact => "compact",
            Route::Match => "match",
            Route::Unmatched => "unmatched",
        }
    }

    /// Every label, by index.
    pub const ALL: [Route; Route::COUNT] = [
        Route::GetCitizen,
        Route::BatchGet,
        Route::Verify,
        Route::BatchVerify,
        Route::QrVerify,
        Route::Statistics,
        Route::Legacy,
        Route::Identify,
        Route::SnapshotInfo,
        Route::Reload,
        Route::OpenApi,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::Register,
        Route::Update,
        Route::RecordDeath,
        Route::EnrolBiometric,
        Route::Changes,
        Route::Compact,
        Route::Match,
        Route::Unmatched,
    ];
}

/// Why a request matched no route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// No such path: 404.
    NotFound,
    /// The path exists with another method: 405 with this `Allow`.
    MethodNotAllowed(&'static str),
}

/// The route of `method path`, with the path parameter (`{id}`, `{cmnd}`;
/// for `{id}/biometrics/{modality}` the whole `id/biometrics/modality`;
/// empty for routes without one).
pub fn route<'p>(method: &Method, path: &'p str) -> Result<(Route, &'p str), NoRoute> {
    // Each path shape with the routes it has, by method.
    let (routes, param): (&[Route], &str) = if let Some(rest) = path.strip_prefix("/v1/citizens/") {
        if let Some(id) = rest.strip_suffix(":recordDeath") {
            (&[Route::RecordDeath], id)
        } else if rest.contains("/biometrics/") {
            (&[Route::EnrolBiometric], rest)
        } else {
            (&[Route::GetCitizen, Route::Update], rest)
        }
    } else if let Some(cmnd) = path.strip_prefix("/v1/legacy-ids/") {
        (&[Route::Legacy], cmnd)
    } else {
        let route = match path {
            "/v1/citizens" => Route::Register,
            "/v1/citizens:batchGet" => Route::BatchGet,
            "/v1/citizens:verify" => Route::Verify,
            "/v1/citizens:batchVerify" => Route::BatchVerify,
            "/v1/citizens:match" => Route::Match,
            "/v1/qr:verify" => Route::QrVerify,
            "/v1/statistics" => Route::Statistics,
            "/v1/biometrics:identify" => Route::Identify,
            "/v1/changes" => Route::Changes,
            "/v1/snapshot" => Route::SnapshotInfo,
            "/v1/admin/reload" => Route::Reload,
            "/v1/admin/compact" => Route::Compact,
            "/v1/openapi.yaml" => Route::OpenApi,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            _ => return Err(NoRoute::NotFound),
        };
        (std::slice::from_ref(&Route::ALL[route.index()]), "")
    };
    let malformed = match routes[0] {
        Route::EnrolBiometric => {
            param.split('/').count() != 3 || param.split('/').any(str::is_empty)
        }
        Route::GetCitizen | Route::RecordDeath | Route::Legacy => {
            param.is_empty() || param.contains('/')
        }
        _ => false,
    };
    if malformed {
        return Err(NoRoute::NotFound);
    }
    match routes.iter().find(|r| ROUTES[r.index()].method == *method) {
        Some(&route) => Ok((route, param)),
        None => Err(NoRoute::MethodNotAllowed(allow_header(routes))),
    }
}

/// The `Allow` header of a path with these routes.
fn allow_header(routes: &[Route]) -> &'static str {
    match routes {
        [Route::GetCitizen, Route::Update] => "GET, PATCH",
        [route] => ROUTES[route.index()].method.as_str(),
        _ => "GET",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_route() {
        for (i, spec) in ROUTES.iter().enumerate() {
            assert_eq!(spec.route.index(), i);
            assert_eq!(Route::ALL[i], spec.route);
        }
    }

    #[test]
    fn matches_paths_and_methods() {
        assert_eq!(
            route(&Method::GET, "/v1/citizens/079089012345"),
            Ok((Route::GetCitizen, "079089012345"))
        );
        assert_eq!(
            route(&Method::GET, "/v1/citizens/x"),
            Ok((Route::GetCitizen, "x"))
        );
        assert_eq!(route(&Method::GET, "/v1/citizens/"), Err(NoRoute::NotFound));
        assert_eq!(
            route(&Method::GET, "/v1/citizens/1/2"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            route(&Method::POST, "/v1/citizens:batchGet"),
            Ok((Route::BatchGet, ""))
        );
        assert_eq!(
            route(&Method::GET, "/v1/citizens:batchGet"),
            Err(NoRoute::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route(&Method::DELETE, "/v1/citizens/1"),
            Err(NoRoute::MethodNotAllowed("GET, PATCH"))
        );
        assert_eq!(
            route(&Method::PATCH, "/v1/citizens/1"),
            Ok((Route::Update, "1"))
        );
        assert_eq!(
            route(&Method::PUT, "/v1/citizens/1/biometrics/face"),
            Ok((Route::EnrolBiometric, "1/biometrics/face"))
        );
        assert_eq!(
            route(&Method::PUT, "/v1/citizens/1/biometrics/"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            route(&Method::POST, "/v1/citizens/1:recordDeath"),
            Ok((Route::RecordDeath, "1"))
        );
        assert_eq!(route(&Method::GET, "/v2/x"), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::GET, "/"), Err(NoRoute::NotFound));
        for spec in &ROUTES {
            let path = spec
                .path
                .replace("{id}", "079089012345")
                .replace("{cmnd}", "123456789")
                .replace("{modality}", "face");
            assert_eq!(route(&spec.method, &path).map(|r| r.0), Ok(spec.route));
        }
    }
}
