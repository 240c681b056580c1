//! Requests as frames: a tower layer that times each request's response
//! future as a frame named `[request] METHOD ROUTE`.
//!
//! A request is the unit a service author thinks in, and the task that runs
//! it is usually a library's (hyper's connection task). [`RequestLayer`]
//! wraps a service so that each call's future is a frame (see
//! [`crate::profiled`]): timed from the call to the response, its waits
//! split by the await points inside it, wherever the connection task runs.
//!
//! Names must come from a bounded set, since each distinct name is kept for
//! the program's life: by default a request is named by its method and, with
//! the `axum` feature, axum's route template (`MatchedPath`, present when the
//! layer is added with `Router::route_layer`), never by its raw path; a gRPC
//! call (tonic's, with the layer given to `Server::builder().layer`) by its
//! method's path, `POST /hello.Greeter/SayHello` (see `grpc`); with neither,
//! by its method alone. [`RequestLayer::named`] names requests otherwise.

mod grpc;

use std::panic::Location;
use std::task::{Context, Poll};
use theseus_executor::Profiled;
use theseus_profiler::{intern_name, FrameKind};

/// A tower [`Layer`](tower_layer::Layer) that makes each request a frame
/// named `[request] METHOD ROUTE`.
///
/// With axum, add it with `route_layer`, so that the route is known:
///
/// ```ignore
/// let app = axum::Router::new()
///     .route("/users/{id}", axum::routing::get(get_user))
///     .route_layer(theseus::tower::RequestLayer::new());
/// ```
#[derive(Clone, Debug)]
pub struct RequestLayer<N = RouteName> {
    naming: N,
    at: &'static Location<'static>,
}

impl RequestLayer {
    /// Requests named by method and route template (see the module docs).
    ///
    /// ```
    /// let layer = theseus::tower::RequestLayer::new();
    /// # let _ = layer;
    /// ```
    #[track_caller]
    pub fn new() -> RequestLayer {
        RequestLayer {
            naming: RouteName,
            at: Location::caller(),
        }
    }

    /// Requests named by `naming`, which must give names from a bounded
    /// set (each distinct one is kept for the program's life).
    ///
    /// ```
    /// use theseus::tower::RequestLayer;
    ///
    /// let layer = RequestLayer::named(|request: &http::Request<String>| {
    ///     let tenant = request.headers().contains_key("x-tenant");
    ///     format!("{} tenant={tenant}", request.method())
    /// });
    /// # let _ = layer;
    /// ```
    #[track_caller]
    pub fn named<N>(naming: N) -> RequestLayer<N> {
        RequestLayer {
            naming,
            at: Location::caller(),
        }
    }
}

impl Default for RequestLayer {
    #[track_caller]
    fn default() -> RequestLayer {
        RequestLayer::new()
    }
}

impl<S, N: Clone> tower_layer::Layer<S> for RequestLayer<N> {
    type Service = RequestService<S, N>;

    fn layer(&self, inner: S) -> RequestService<S, N> {
        RequestService {
            inner,
            naming: self.naming.clone(),
            at: self.at,
        }
    }
}

/// How a request's frame is named: by [`RouteName`], or by a closure
/// from `&http::Request<B>` to a `String`.
pub trait NameRequest<B> {
    /// The request's name, without the `[request]` prefix.
    fn name(&self, request: &http::Request<B>) -> String;

    /// The request's name as kept for the program's life: [`Self::name`],
    /// interned. A naming that can find its names again without building
    /// them (as [`RouteName`] does) overrides it.
    fn interned(&self, request: &http::Request<B>) -> &'static str {
        intern_name(&self.name(request))
    }
}

impl<B, F: Fn(&http::Request<B>) -> String> NameRequest<B> for F {
    fn name(&self, request: &http::Request<B>) -> String {
        self(request)
    }
}

/// The default naming: `METHOD ROUTE`, the route being axum's template
/// (with the `axum` feature, when known) or a gRPC call's method path, or
/// `METHOD` alone. Methods other than the standard ones read `OTHER`, so
/// that no request can add a name.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteName;

impl<B> NameRequest<B> for RouteName {
    fn name(&self, request: &http::Request<B>) -> String {
        let method = standard_method(request.method());
        match route(request) {
            Some(route) => format!("{method} {route}"),
            None => grpc::name(request).unwrap_or(method).to_string(),
        }
    }

    /// Without building the name: a method alone is its own name, and a
    /// route's is found again by where axum keeps the template (see
    /// [`Named`]).
    fn interned(&self, request: &http::Request<B>) -> &'static str {
        let method = standard_method(request.method());
        match route(request) {
            Some(route) => Named::find(method, route),
            None => grpc::name(request).unwrap_or(method),
        }
    }
}

/// The names of this thread's requests, by method and by the address of
/// their route template: axum hands each request of a route the same
/// shared template, so a name is found again with a lookup, where building
/// and interning it costs an allocation, a format and a lock. A name is
/// used only if it reads as the method and the route (the address may have
/// been reused for another template).
struct Named;

thread_local! {
    static NAMED: std::cell::RefCell<std::collections::HashMap<(usize, usize, usize), &'static str>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl Named {
    /// Most names kept per thread: past this, the map starts again (a
    /// program whose templates are not shared finds nothing in it, and
    /// must not grow it).
    const MOST: usize = 1024;

    /// The interned name `METHOD ROUTE`.
    fn find(method: &'static str, route: &str) -> &'static str {
        let key = (
            method.as_ptr() as usize,
            route.as_ptr() as usize,
            route.len(),
        );
        let reads_as = |name: &str| {
            name.len() == method.len() + 1 + route.len()
                && name.starts_with(method)
                && name.ends_with(route)
        };
        let found = NAMED
            .try_with(|named| named.borrow().get(&key).copied())
            .ok()
            .flatten()
            .filter(|name| reads_as(name));
        if let Some(name) = found {
            return name;
        }
        let name = intern_name(&format!("{method} {route}"));
        let _ = NAMED.try_with(|named| {
            let mut named = named.borrow_mut();
            if named.len() >= Named::MOST {
                named.clear();
            }
            named.insert(key, name);
        });
        name
    }
}

/// The method's name, or `OTHER` for an extension method.
fn standard_method(method: &http::Method) -> &'static str {
    use http::Method;
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::PATCH,
        Method::TRACE,
    ];
    match STANDARD.iter().find(|m| *m == method) {
        Some(standard) => standard_name(standard),
        None => "OTHER",
    }
}

/// The name of one of the standard methods, as a `'static` string.
fn standard_name(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "PATCH" => "PATCH",
        _ => "TRACE",
    }
}

/// The request's route template, where one is known.
#[cfg(feature = "axum")]
fn route<B>(request: &http::Request<B>) -> Option<&str> {
    let matched = request.extensions().get::<axum::extract::MatchedPath>()?;
    Some(matched.as_str())
}

#[cfg(not(feature = "axum"))]
fn route<B>(_request: &http::Request<B>) -> Option<&str> {
    None
}

/// The service [`RequestLayer`] makes: each call's future is a frame.
#[derive(Clone, Debug)]
pub struct RequestService<S, N = RouteName> {
    inner: S,
    naming: N,
    at: &'static Location<'static>,
}

impl<S, B, N> tower_service::Service<http::Request<B>> for RequestService<S, N>
where
    S: tower_service::Service<http::Request<B>>,
    N: NameRequest<B>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Profiled<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Profiled<S::Future> {
        // Named only when profiled: naming allocates.
        let name = if theseus_profiler::is_active() {
            self.naming.interned(&request)
        } else {
            ""
        };
        Profiled::marked(self.inner.call(request), FrameKind::Request, name, self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_named_by_what_it_reads_not_only_where_it_is() {
        let mut template = String::from("/users/{id}");
        let users = Named::find("GET", &template);
        assert_eq!(users, "GET /users/{id}");
        // Found again: the same interned name.
        assert!(std::ptr::eq(users, Named::find("GET", &template)));
        assert_eq!(Named::find("POST", &template), "POST /users/{id}");
        // Another template at the same address, of the same length.
        template.replace_range(1..6, "posts");
        assert_eq!(Named::find("GET", &template), "GET /posts/{id}");
    }

    #[test]
    fn without_a_template_a_request_is_named_by_its_method() {
        let request = http::Request::get("/users/7").body(()).unwrap();
        assert_eq!(RouteName.interned(&request), "GET");
        assert_eq!(RouteName.name(&request), "GET");
        let other = http::Request::builder()
            .method("PURGE")
            .uri("/users/7")
            .body(())
            .unwrap();
        assert_eq!(RouteName.interned(&other), "OTHER");
    }
}
