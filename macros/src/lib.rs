//! `#[theseus::main]` and `#[theseus::test]`: the attributes that replace
//! `#[tokio::main]` and `#[tokio::test]`; and `#[theseus::profiled]`
//! (`profiled`), which makes an async fn's calls frames.
//!
//! Both accept tokio's `flavor = "multi_thread" | "current_thread"`,
//! `worker_threads = N`, (current-thread) `start_paused = true` and
//! `crate = "path"`. `#[theseus::main]` goes on any async fn, as
//! `#[tokio::main]` does, arguments included. Use them through the `theseus`
//! crate, which re-exports them; the expansion calls `::theseus::__private`
//! (or `crate`'s).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, MetaNameValue, Token};

/// Runs an async fn on a theseus runtime and writes its profile when it
/// returns (see the `theseus` crate docs). Usually that is `main`; it can be
/// any async fn, with arguments, called from a plain `fn main`:
///
/// ```ignore
/// #[theseus::main(worker_threads = 4)]
/// async fn main() -> std::io::Result<()> {
///     theseus::spawn(async { /* ... */ }).await?;
///     Ok(())
/// }
///
/// #[theseus::main]
/// async fn run(port: u16) -> std::io::Result<()> {
///     theseus::spawn(async move { /* serve on `port` */ }).await?;
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), Kind::Main)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Runs an `async fn` test on a theseus runtime (current-thread by default,
/// as with `#[tokio::test]`). Tests do not write profiles.
///
/// ```ignore
/// #[theseus::test(flavor = "multi_thread", worker_threads = 2)]
/// async fn adds() {
///     assert_eq!(theseus::spawn(async { 1 + 1 }).await.unwrap(), 2);
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), Kind::Test)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Makes every call of an `async fn` (a free function or a method, with
/// `self`, generics, any return type) a frame: timed from the call to its
/// completion wherever it is awaited, its waits split by the await points
/// inside it, under a leaf `[frame] app::db_query` below the stack that
/// awaits it (see `theseus::profiled`).
///
/// ```ignore
/// #[theseus::profiled]
/// async fn db_query(id: u64) -> Result<User, Error> {
///     /* ... */
/// }
/// ```
#[proc_macro_attribute]
pub fn profiled(args: TokenStream, item: TokenStream) -> TokenStream {
    profiled::expand(args.into(), item.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

mod profiled;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attribute(self) -> &'static str {
        match self {
            Kind::Main => "#[theseus::main]",
            Kind::Test => "#[theseus::test]",
        }
    }
}

struct Config {
    multi_thread: bool,
    worker_threads: Option<(usize, Span)>,
    start_paused: Option<Span>,
    /// `crate = "path"`: where the `theseus` crate is, when it was renamed.
    krate: syn::Path,
}

/// What the attributes accept, for error messages.
const OPTIONS: &str = "`flavor = \"multi_thread\" | \"current_thread\"`, `worker_threads = N`, \
                       `start_paused = true` and `crate = \"path\"`";

fn parse_config(args: TokenStream2, kind: Kind) -> syn::Result<Config> {
    let mut config = Config {
        multi_thread: kind == Kind::Main,
        worker_threads: None,
        start_paused: None,
        krate: syn::parse_quote!(::theseus),
    };
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    for meta in metas {
        let Meta::NameValue(pair) = &meta else {
            return Err(syn::Error::new(
                meta.span(),
                format!("{} accepts {OPTIONS}", kind.attribute()),
            ));
        };
        apply_option(&mut config, pair, kind)?;
    }
    if let (false, Some((_, span))) = (config.multi_thread, config.worker_threads) {
        return Err(syn::Error::new(
            span,
            "`worker_threads` applies only to `flavor = \"multi_thread\"`: a current-thread runtime runs on one thread",
        ));
    }
    if let (true, Some(span)) = (config.multi_thread, config.start_paused) {
        return Err(syn::Error::new(
            span,
            "`start_paused` needs `flavor = \"current_thread\"`, as with tokio: paused time advances only when the one thread is idle",
        ));
    }
    Ok(config)
}

/// Sets the option `pair` names, or says what it takes.
fn apply_option(config: &mut Config, pair: &MetaNameValue, kind: Kind) -> syn::Result<()> {
    let name = pair
        .path
        .get_ident()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let literal = match &pair.value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    };
    match (name.as_str(), literal) {
        ("flavor", Some(Lit::Str(flavor))) => {
            config.multi_thread = match flavor.value().as_str() {
                "multi_thread" => true,
                "current_thread" => false,
                other => {
                    let expected = "expected \"multi_thread\" or \"current_thread\"";
                    let message = format!("unknown flavor {other:?}: {expected}");
                    return Err(syn::Error::new(flavor.span(), message));
                }
            }
        }
        ("worker_threads", Some(Lit::Int(count))) => {
            let value: usize = count.base10_parse()?;
            if value == 0 {
                let message = "`worker_threads` must be at least 1";
                return Err(syn::Error::new(count.span(), message));
            }
            config.worker_threads = Some((value, count.span()));
        }
        ("start_paused", Some(Lit::Bool(paused))) => {
            config.start_paused = paused.value.then_some(paused.span);
        }
        ("crate", Some(Lit::Str(path))) => config.krate = path.parse()?,
        (known @ ("flavor" | "worker_threads" | "start_paused" | "crate"), _) => {
            let takes = match known {
                "flavor" => "`flavor` takes a string: \"multi_thread\" or \"current_thread\"",
                "worker_threads" => "`worker_threads` takes an integer, e.g. `worker_threads = 4`",
                "start_paused" => "`start_paused` takes `true` or `false`",
                _ => "`crate` takes a path in a string, e.g. `crate = \"theseus\"`",
            };
            return Err(syn::Error::new(pair.value.span(), takes));
        }
        (other, _) => {
            let message = format!(
                "unknown option `{other}` for {}: accepted are {OPTIONS}",
                kind.attribute()
            );
            return Err(syn::Error::new(pair.path.span(), message));
        }
    }
    Ok(())
}

fn expand(args: TokenStream2, item: TokenStream2, kind: Kind) -> syn::Result<TokenStream2> {
    let config = parse_config(args, kind)?;
    let krate = &config.krate;
    let mut function: ItemFn = syn::parse2(item)?;
    if function.sig.asyncness.take().is_none() {
        return Err(syn::Error::new(
            function.sig.fn_token.span(),
            format!(
                "{} goes on an `async fn`: the `async` keyword is missing",
                kind.attribute()
            ),
        ));
    }
    // As with tokio, `main` may be any async fn, with arguments (a plain
    // `fn main` that parses the command line and calls `async fn run(args)`):
    // the arguments move into the future. A test takes none.
    if kind == Kind::Test && !function.sig.inputs.is_empty() {
        return Err(syn::Error::new(
            function.sig.inputs.span(),
            "#[theseus::test] goes on a function without arguments: the test harness passes none",
        ));
    }
    let builder = if config.multi_thread {
        let workers = config
            .worker_threads
            .map(|(n, span)| quote_spanned!(span=> builder.worker_threads(#n);));
        quote! {
            let mut builder = #krate::runtime::Builder::new_multi_thread();
            #workers
        }
    } else {
        quote! { let mut builder = #krate::runtime::Builder::new_current_thread(); }
    };
    let paused = config
        .start_paused
        .map(|span| quote_spanned!(span=> builder.start_paused(true);));
    let body = &function.block;
    let run = match kind {
        Kind::Main => quote!(#krate::__private::run_main),
        Kind::Test => quote!(#krate::__private::run_test),
    };
    let test_attr = (kind == Kind::Test).then(|| quote!(#[::core::prelude::v1::test]));
    let attrs = &function.attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            #builder
            #paused
            #run(builder, async move #body)
        }
    })
}
