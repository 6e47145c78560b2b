//! Serde and schemars on the user's types without a serde or schemars dependency: the
//! derives are added through the runtime's `__private` re-exports, with `crate = "..."`
//! pointing the derives' generated code there too.

use proc_macro2::TokenStream;
use quote::quote;
use syn::punctuated::Punctuated;
use syn::{Attribute, Path, Token};

use crate::root;

/// Which of the three derives the user already wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserDerives {
    pub(crate) serialize: bool,
    pub(crate) deserialize: bool,
    pub(crate) json_schema: bool,
}

impl UserDerives {
    /// Scans the `#[derive(...)]` attributes (by the derive's last path segment).
    pub(crate) fn of(attrs: &[Attribute]) -> Self {
        let mut found = Self::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("derive")) {
            let Ok(paths) = attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)
            else {
                continue;
            };
            for path in paths {
                match path.segments.last().map(|s| s.ident.to_string()).as_deref() {
                    Some("Serialize") => found.serialize = true,
                    Some("Deserialize") => found.deserialize = true,
                    Some("JsonSchema") => found.json_schema = true,
                    _ => {}
                }
            }
        }
        found
    }

    /// Whether the user derives either serde trait.
    pub(crate) fn serde(self) -> bool {
        self.serialize || self.deserialize
    }
}

/// The attributes that make a state or an action `Serialize + Deserialize + JsonSchema`:
/// the missing derives, then `#[serde(crate = ...)]` / `#[schemars(crate = ...)]` when a
/// derive of that crate was added. Goes before the user's attributes, so the user's
/// `#[serde(...)]` helpers come after the derive that introduces them.
pub(crate) fn inject(root: &TokenStream, attrs: &[Attribute]) -> TokenStream {
    let user = UserDerives::of(attrs);
    let private = quote!(#root::__private);
    let mut derives = Vec::new();
    if !user.serialize {
        derives.push(quote!(#private::serde::Serialize));
    }
    if !user.deserialize {
        derives.push(quote!(#private::serde::Deserialize));
    }
    if !user.json_schema {
        derives.push(quote!(#private::schemars::JsonSchema));
    }
    if derives.is_empty() {
        return TokenStream::new();
    }
    let root = root::as_string(root);
    let serde_crate = (!user.serialize || !user.deserialize).then(|| {
        let path = format!("{root}::__private::serde");
        quote!(#[serde(crate = #path)])
    });
    let schemars_crate = (!user.json_schema).then(|| {
        let path = format!("{root}::__private::schemars");
        quote!(#[schemars(crate = #path)])
    });
    quote! {
        #[derive(#(#derives),*)]
        #serde_crate
        #schemars_crate
    }
}

/// Whether `attr` is a `#[serde(...)]` attribute.
pub(crate) fn is_serde(attr: &Attribute) -> bool {
    attr.path().is_ident("serde")
}

/// Whether `attr` is a `#[schemars(...)]` attribute.
pub(crate) fn is_schemars(attr: &Attribute) -> bool {
    attr.path().is_ident("schemars")
}

/// Whether `attr` is copied from an event's field onto the generated payload types.
pub(crate) fn is_payload_attr(attr: &Attribute) -> bool {
    is_serde(attr) || is_schemars(attr) || attr.path().is_ident("doc")
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn finds_user_derives_by_last_segment() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[derive(Debug, serde::Serialize)]),
            parse_quote!(#[derive(JsonSchema)]),
        ];
        let found = UserDerives::of(&attrs);
        assert_eq!(
            found,
            UserDerives {
                serialize: true,
                deserialize: false,
                json_schema: true
            }
        );
    }

    #[test]
    fn injects_only_the_missing_derives() {
        let root = quote!(::act_runtime);
        let attrs: Vec<Attribute> = vec![parse_quote!(#[derive(JsonSchema)])];
        let tokens = inject(&root, &attrs).to_string();
        assert!(tokens.contains("serde :: Serialize"));
        assert!(tokens.contains("serde :: Deserialize"));
        assert!(!tokens.contains("JsonSchema"));
        assert!(tokens.contains("\"::act_runtime::__private::serde\""));
        assert!(!tokens.contains("schemars"));
        let all: Vec<Attribute> = vec![parse_quote!(#[derive(Serialize, Deserialize, JsonSchema)])];
        assert!(inject(&root, &all).is_empty());
    }
}
