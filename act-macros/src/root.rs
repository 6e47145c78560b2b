//! The path generated code uses to name the runtime crate.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};

/// How generated code names `act-runtime`: `crate = path` when the user gave it, otherwise
/// the name the calling crate's manifest gives the `act-runtime` package (so a renamed
/// dependency works), otherwise `::act_runtime`.
pub(crate) fn resolve(explicit: Option<&syn::Path>) -> TokenStream {
    if let Some(path) = explicit {
        return path.to_token_stream();
    }
    match crate_name("act-runtime") {
        // The runtime declares `extern crate self as act_runtime`, so this works inside it.
        Ok(FoundCrate::Itself) | Err(_) => quote!(::act_runtime),
        Ok(FoundCrate::Name(name)) => {
            let ident = syn::Ident::new(&name, Span::call_site());
            quote!(::#ident)
        }
    }
}

/// The root path as the string serde's and schemars' `crate = "..."` attributes expect.
pub(crate) fn as_string(root: &TokenStream) -> String {
    root.to_string().replace(' ', "")
}
