//! The borrowed payload structs that serialize an event hold `&'a T` where the event holds
//! `T`, so the field functions a user names in `#[serde(...)]` (`skip_serializing_if`,
//! `serialize_with`, `with`) would receive `&&T`. This module rewrites those attributes to
//! call generated shims that dereference once, so the user's functions see `&T` as written.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Lit, LitStr, Meta, Token, Type};

/// The attributes of one field of a borrowed serialize struct, and the shims they call.
pub(crate) fn serialize_attrs(
    attrs: &[&Attribute],
    ty: &Type,
    prefix: &Ident,
    serde_root: &TokenStream,
) -> (Vec<TokenStream>, Vec<TokenStream>) {
    let (mut out, mut shims) = (Vec::new(), Vec::new());
    for attr in attrs {
        if !attr.path().is_ident("serde") {
            out.push(quote!(#attr));
            continue;
        }
        let Ok(metas) = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
        else {
            out.push(quote!(#attr));
            continue;
        };
        let mut kept = Vec::new();
        for meta in metas {
            let Meta::NameValue(nv) = &meta else {
                // `default` is Deserialize-only: not on a serialize-only struct.
                if !meta.path().is_ident("default") {
                    kept.push(quote!(#meta));
                }
                continue;
            };
            let Expr::Lit(syn::ExprLit {
                lit: Lit::Str(value),
                ..
            }) = &nv.value
            else {
                kept.push(quote!(#meta));
                continue;
            };
            let Ok(path) = value.parse::<syn::Path>() else {
                kept.push(quote!(#meta));
                continue;
            };
            let key = nv
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match key.as_str() {
                "skip_serializing_if" => {
                    let shim = format_ident!("{}_skip", prefix);
                    shims.push(quote! {
                        #[allow(non_snake_case)]
                        fn #shim(value: &&#ty) -> bool { #path(*value) }
                    });
                    let name = LitStr::new(&shim.to_string(), value.span());
                    kept.push(quote!(skip_serializing_if = #name));
                }
                "serialize_with" | "with" => {
                    let shim = format_ident!("{}_ser", prefix);
                    let call = if key == "with" {
                        quote!(#path::serialize)
                    } else {
                        quote!(#path)
                    };
                    shims.push(quote! {
                        #[allow(non_snake_case)]
                        fn #shim<S: #serde_root::Serializer>(
                            value: &&#ty,
                            serializer: S,
                        ) -> ::core::result::Result<S::Ok, S::Error> {
                            #call(*value, serializer)
                        }
                    });
                    let name = LitStr::new(&shim.to_string(), value.span());
                    kept.push(quote!(serialize_with = #name));
                }
                // Deserialize-only: not on a serialize-only struct.
                "deserialize_with" | "default" => {}
                _ => kept.push(quote!(#meta)),
            }
        }
        if !kept.is_empty() {
            out.push(quote!(#[serde(#(#kept),*)]));
        }
    }
    (out, shims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn rewrites_field_functions_to_shims() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[doc = " A note."]),
            parse_quote!(#[serde(rename = "n", skip_serializing_if = "Option::is_none", default)]),
            parse_quote!(#[serde(with = "my::codec")]),
        ];
        let refs: Vec<&Attribute> = attrs.iter().collect();
        let (out, shims) = serialize_attrs(
            &refs,
            &parse_quote!(Option<String>),
            &format_ident!("__act_E_note"),
            &quote!(::s),
        );
        let out: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            out,
            [
                "# [doc = \" A note.\"]",
                "# [serde (rename = \"n\" , skip_serializing_if = \"__act_E_note_skip\")]",
                "# [serde (serialize_with = \"__act_E_note_ser\")]",
            ]
        );
        assert_eq!(shims.len(), 2);
        assert!(shims[0].to_string().contains("Option :: is_none (* value)"));
        assert!(
            shims[1]
                .to_string()
                .contains("my :: codec :: serialize (* value , serializer)")
        );
    }
}
