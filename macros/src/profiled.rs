//! `#[theseus::profiled]`: makes every call of an async fn a frame.
//!
//! The body moves into an async block wrapped in a frame, which the
//! function awaits: the signature (receivers, generics, lifetimes, the
//! return type) is left as written. The frame is named by the type name of
//! an item declared in the function, which is the function's path, and
//! marked at the function's name, so its leaf points at the definition.

use proc_macro2::{TokenStream as TokenStream2, TokenTree};
use quote::{quote, quote_spanned};
use syn::{ItemFn, ReturnType, Type};

/// The expansion of `#[theseus::profiled]` on `item`; `args` must be empty.
pub(crate) fn expand(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !args.is_empty() {
        return Err(syn::Error::new_spanned(
            args,
            "#[theseus::profiled] takes no arguments: the frame is named after the function",
        ));
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = syn::parse2(item)?;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "#[theseus::profiled] goes on an `async fn`; for any other future, use `theseus::profiled(future)`",
        ));
    }
    // The body's type, told to the frame so that `?` and `return` in the
    // block infer as in the function; an `impl Trait` cannot be named there.
    let output = match &sig.output {
        ReturnType::Default => Some(quote!(())),
        ReturnType::Type(_, ty) if !names_impl_trait(ty) => Some(quote!(#ty)),
        ReturnType::Type(..) => None,
    };
    let output = output.unwrap_or_else(|| quote!(_));
    let frame = quote_spanned! {sig.ident.span()=>
        ::theseus::__private::profiled_fn::<#output, _>(
            ::std::any::type_name_of_val(&__theseus_frame),
            async move #block,
        )
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            // Its type name is this function's path.
            fn __theseus_frame() {}
            #frame.await
        }
    })
}

/// Whether `ty` has an `impl Trait` in it anywhere.
fn names_impl_trait(ty: &Type) -> bool {
    has_impl(quote!(#ty))
}

fn has_impl(tokens: TokenStream2) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => has_impl(group.stream()),
        _ => false,
    })
}
