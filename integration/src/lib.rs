//! No code: this package holds the integration tests of theseus that need
//! libraries the `theseus` package itself does not (axum, hyper, tokio-metrics,
//! pprof-rs, quick-xml), so that building theseus's examples does not build
//! them. `cargo test --workspace` runs them with the others.
