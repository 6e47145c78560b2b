//! What the attribute macros were put on.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;

use crate::ctxt::Ctxt;

/// Parses the annotated item; when it is not what the macro takes, reports `message` on the
/// item's keyword and returns `None`.
pub(crate) fn parse(cx: &mut Ctxt, input: TokenStream) -> Option<syn::Item> {
    cx.ok(syn::parse2::<syn::Item>(input))
}

/// The keyword of an item (`enum`, `fn`, ...), for errors about the kind of item.
pub(crate) fn keyword(item: &syn::Item) -> (Span, &'static str) {
    use syn::Item::*;
    match item {
        Struct(i) => (i.struct_token.span, "a struct"),
        Enum(i) => (i.enum_token.span, "an enum"),
        Union(i) => (i.union_token.span, "a union"),
        Fn(i) => (i.sig.fn_token.span, "a function"),
        Trait(i) => (i.trait_token.span, "a trait"),
        Impl(i) => (i.impl_token.span, "an impl block"),
        Mod(i) => (i.mod_token.span, "a module"),
        Type(i) => (i.type_token.span, "a type alias"),
        other => (other.span(), "this item"),
    }
}

/// The original tokens followed by the reported errors: what a macro emits when it cannot
/// expand at all, so the item still exists and only the macro's own message shows.
pub(crate) fn unchanged(input: TokenStream, cx: Ctxt) -> TokenStream {
    let errors = cx.into_compile_errors();
    quote!(#input #errors)
}
