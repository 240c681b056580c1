//! gRPC requests' names: `POST /package.Service/Method`.
//!
//! A gRPC method is its request's path, and a service has a fixed set of
//! them, so the path names the request where an HTTP path would not (and
//! tonic routes after any layer given to its server builder, so no route
//! template is known there). A client may still send any path: only paths
//! of a method's shape are taken, and only the first [`MOST`] distinct
//! ones; past that a request reads [`OTHER`].

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};
use theseus_profiler::intern_name;

/// Most distinct gRPC methods named; a program serves far fewer.
pub(super) const MOST: usize = 1024;

/// The name of a gRPC request past the first [`MOST`] methods.
pub(super) const OTHER: &str = "POST (another gRPC method)";

/// Names by path, for the program's life.
static NAMES: LazyLock<RwLock<HashMap<Box<str>, &'static str>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// The request's name if it is a gRPC call: a `POST` with a gRPC content
/// type, to a path `/service/method` (a service's package-qualified name
/// and a method's name: letters, digits, `_` and `.`).
pub(super) fn name<B>(request: &http::Request<B>) -> Option<&'static str> {
    if request.method() != http::Method::POST {
        return None;
    }
    let content_type = request.headers().get(http::header::CONTENT_TYPE)?;
    if !content_type.as_bytes().starts_with(b"application/grpc") {
        return None;
    }
    let path = request.uri().path();
    is_method_path(path).then(|| named(path))
}

/// `/service/method`, each part non-empty and of a gRPC name's characters.
fn is_method_path(path: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.len() <= 256
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return false;
    };
    part(service) && part(method)
}

/// The interned `POST path`, or [`OTHER`] once [`MOST`] are named.
fn named(path: &str) -> &'static str {
    if let Some(&name) = NAMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(path)
    {
        return name;
    }
    let mut names = NAMES.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(&name) = names.get(path) {
        return name;
    }
    if names.len() >= MOST {
        return OTHER;
    }
    let name = intern_name(&format!("POST {path}"));
    names.insert(path.into(), name);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(path: &str, content_type: &str) -> http::Request<()> {
        http::Request::post(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap()
    }

    #[test]
    fn a_grpc_call_is_named_by_its_method_path() {
        let call = grpc("/hello.Greeter/SayHello", "application/grpc");
        assert_eq!(name(&call), Some("POST /hello.Greeter/SayHello"));
        let proto = grpc("/hello.Greeter/SayHello", "application/grpc+proto");
        assert!(std::ptr::eq(name(&proto).unwrap(), name(&call).unwrap()));
    }

    #[test]
    fn only_grpc_calls_to_a_method_path_are_named() {
        // Not gRPC: a JSON POST, a GET.
        assert_eq!(
            name(&grpc("/hello.Greeter/SayHello", "application/json")),
            None
        );
        let get = http::Request::get("/hello.Greeter/SayHello")
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        assert_eq!(name(&get), None);
        // Not a method's path.
        for path in [
            "/",
            "/hello.Greeter",
            "/a/b/c",
            "/hello.Greeter/",
            "/a/b-c",
            "/users/7%20",
        ] {
            assert_eq!(name(&grpc(path, "application/grpc")), None, "{path}");
        }
    }

    #[test]
    fn past_the_most_methods_a_call_reads_as_another_method() {
        for i in 0..MOST + 10 {
            let named = name(&grpc(&format!("/bounded.S/M{i}"), "application/grpc")).unwrap();
            let len = NAMES.read().unwrap().len();
            if named == OTHER {
                assert_eq!(len, MOST);
                return;
            }
        }
        panic!("more than {MOST} gRPC methods were named");
    }
}
