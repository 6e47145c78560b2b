//! `#[emits(State)]`: an enum becomes the event enum of a state. One variant per event, the
//! variant's name is the event's name; each event gets its own payload types (so its JSON
//! holds only its fields and it has its own schema).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Field, Fields, Ident, ItemEnum, Path, Type};

use crate::attr::Args;
use crate::ctxt::Ctxt;
use crate::derives::{self, UserDerives};
use crate::{item, root, shim, version};

const KEYS: &[&str] = &["passthrough", "crate"];

/// The parsed `#[emits]`.
pub(crate) struct EmitsDef {
    pub(crate) item: ItemEnum,
    pub(crate) root: TokenStream,
    /// `None` when missing (reported).
    pub(crate) state: Option<Path>,
    /// The span of the `passthrough` flag, when given.
    pub(crate) passthrough: Option<Span>,
    pub(crate) events: Vec<EventDef>,
}

/// One event (variant).
pub(crate) struct EventDef {
    pub(crate) ident: Ident,
    /// The event name: the variant ident, raw prefix removed.
    pub(crate) name: String,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) shape: Shape,
}

/// What an event carries.
pub(crate) enum Shape {
    /// `ItemAdded { sku: String }`.
    Named(Vec<Field>),
    /// `CheckedOut`.
    Unit,
    /// `Deposited(Money)`: the payload type is the event's data.
    Payload(Box<Type>),
    /// Anything else (reported); expanded like a unit so the rest still type-checks.
    Invalid,
}

/// The entry point: parse, check, expand.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let Some(parsed) = item::parse(&mut cx, input.clone()) else {
        return item::unchanged(input, cx);
    };
    let syn::Item::Enum(item) = parsed else {
        let (span, what) = item::keyword(&parsed);
        cx.error(
            span,
            format!("`#[emits]` goes on an enum, not on {what}: write the events as `enum ... {{ Event1 {{ .. }}, Event2, .. }}`, one variant per event"),
        );
        return item::unchanged(input, cx);
    };
    let def = parse(&mut cx, args, item);
    check(&mut cx, &def);
    let generic = !def.item.generics.params.is_empty() || def.item.generics.where_clause.is_some();
    let out = if generic || def.state.is_none() {
        emit_enum(&def)
    } else {
        generate(&def)
    };
    let errors = cx.into_compile_errors();
    quote!(#out #errors)
}

/// Reads the arguments and the variants.
pub(crate) fn parse(cx: &mut Ctxt, args: TokenStream, item: ItemEnum) -> EmitsDef {
    let mut args = Args::parse(cx, args);
    let state = args.take_positional(KEYS);
    if state.is_none() {
        cx.error(
            Span::call_site(),
            "expected the state first: `#[emits(Cart)]`",
        );
    }
    let (mut passthrough, mut krate) = (None, None);
    args.read(cx, "emits", KEYS, |cx, key, arg| match key {
        "passthrough" => passthrough = cx.ok(arg.flag()).map(|()| arg.span()),
        "crate" => krate = cx.ok(arg.path()),
        _ => unreachable!("key not in KEYS"),
    });
    let events = item
        .variants
        .iter()
        .map(|v| EventDef {
            ident: v.ident.clone(),
            name: v.ident.unraw().to_string(),
            attrs: v
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .cloned()
                .collect(),
            shape: match &v.fields {
                Fields::Named(f) => Shape::Named(f.named.iter().cloned().collect()),
                Fields::Unit => Shape::Unit,
                Fields::Unnamed(f) if f.unnamed.len() == 1 => {
                    Shape::Payload(Box::new(f.unnamed[0].ty.clone()))
                }
                Fields::Unnamed(_) => Shape::Invalid,
            },
        })
        .collect();
    EmitsDef {
        root: root::resolve(krate.as_ref()),
        item,
        state,
        passthrough,
        events,
    }
}

/// The checks of one enum.
pub(crate) fn check(cx: &mut Ctxt, def: &EmitsDef) {
    let generics = &def.item.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned(
            generics,
            "an event enum cannot be generic: its events are stored and read back by name",
        );
    }
    for (event, variant) in def.events.iter().zip(&def.item.variants) {
        if let Shape::Invalid = event.shape {
            let n = variant.fields.len();
            cx.error_spanned(
                &variant.fields,
                format!(
                    "event `{}` has {n} unnamed fields: name them (`{0} {{ a: A, b: B }}`) or carry one payload type (`{0}(Payload)`)",
                    event.name
                ),
            );
        }
        if let (Shape::Payload(ty), Some(_)) = (&event.shape, def.passthrough) {
            cx.error_spanned(
                ty,
                format!(
                    "`passthrough` copies named event fields into same-named state fields, and `{}` carries a payload type: give it named fields or write `impl Patch` by hand",
                    event.name
                ),
            );
        }
        if let Err(message) = version::parse(&event.name) {
            cx.error(event.ident.span(), message);
        }
        if event.name == "__snapshot__" || event.name == "__tombstone__" {
            cx.error(
                event.ident.span(),
                format!(
                    "`{}` is reserved for the framework's marker events",
                    event.name
                ),
            );
        }
    }
}

/// The enum as the user wrote it, minus the serde/schemars helper attributes it cannot
/// carry without the derives (they were meant for the payload types).
fn emit_enum(def: &EmitsDef) -> TokenStream {
    let mut item = def.item.clone();
    let user = UserDerives::of(&item.attrs);
    let keep = |a: &Attribute| {
        let serde_ok = user.serde() || !derives::is_serde(a);
        let schemars_ok = user.json_schema || !derives::is_schemars(a);
        serde_ok && schemars_ok
    };
    item.attrs.retain(keep);
    for variant in &mut item.variants {
        variant.attrs.retain(keep);
        for field in variant.fields.iter_mut() {
            field.attrs.retain(keep);
        }
    }
    let allow = item
        .variants
        .iter()
        .any(|v| v.ident.unraw().to_string().contains('_'))
        .then(|| quote!(#[allow(non_camel_case_types)]));
    quote!(#allow #item)
}

/// The names of the hidden payload types of one event.
fn payload_idents(event: &EventDef) -> (Ident, Ident) {
    let name = event.ident.unraw();
    (
        format_ident!("__ActData_{}", name),
        format_ident!("__ActPayload_{}", name),
    )
}

/// The enum, its per-event payload types, and the `Event`, `Emits`, `StateActions` (and with
/// `passthrough`, `Patch`) impls.
pub(crate) fn generate(def: &EmitsDef) -> TokenStream {
    let EmitsDef { root, .. } = def;
    let state = def.state.as_ref().expect("generate needs the state");
    let private = quote!(#root::__private);
    let root_str = root::as_string(root);
    let serde_crate = format!("{root_str}::__private::serde");
    let schemars_crate = format!("{root_str}::__private::schemars");
    let ident = &def.item.ident;
    let item = emit_enum(def);

    let mut payloads = Vec::new();
    let (mut name_arms, mut to_arms, mut from_arms, mut schemas) = (vec![], vec![], vec![], vec![]);
    for event in &def.events {
        let EventDef {
            ident: variant,
            name,
            attrs,
            ..
        } = event;
        let (data, payload) = payload_idents(event);
        name_arms.push(quote!(Self::#variant { .. } => #name));
        match &event.shape {
            Shape::Named(fields) => {
                let members: Vec<_> = fields
                    .iter()
                    .map(|f| f.ident.clone().expect("named"))
                    .collect();
                let tys = fields.iter().map(|f| &f.ty);
                let field_attrs: Vec<Vec<&Attribute>> = fields
                    .iter()
                    .map(|f| {
                        f.attrs
                            .iter()
                            .filter(|a| derives::is_payload_attr(a))
                            .collect()
                    })
                    .collect();
                let owned = fields.iter().zip(&field_attrs).map(|(f, attrs)| {
                    let (m, ty) = (&f.ident, &f.ty);
                    quote!(#(#attrs)* #m: #ty)
                });
                let mut shims = Vec::new();
                let borrowed: Vec<_> = fields
                    .iter()
                    .zip(&field_attrs)
                    .map(|(f, attrs)| {
                        let m = f.ident.as_ref().expect("named");
                        let prefix = format_ident!("__act_{}_{}", event.ident.unraw(), m.unraw());
                        let serde_root = quote!(#private::serde);
                        let (attrs, more) =
                            shim::serialize_attrs(attrs, &f.ty, &prefix, &serde_root);
                        shims.extend(more);
                        attrs
                    })
                    .collect();
                payloads.push(quote! {
                    #(#shims)*

                    #[derive(#private::serde::Serialize)]
                    #[serde(crate = #serde_crate)]
                    #[allow(non_camel_case_types)]
                    struct #data<'__a> { #( #(#borrowed)* #members: &'__a #tys, )* }

                    #[derive(#private::serde::Deserialize, #private::schemars::JsonSchema)]
                    #[serde(crate = #serde_crate, rename = #name)]
                    #[schemars(crate = #schemars_crate)]
                    #[allow(non_camel_case_types)]
                    #(#attrs)*
                    struct #payload { #(#owned,)* }
                });
                to_arms.push(quote! {
                    Self::#variant { #(#members),* } => #private::to_data(&#data { #(#members),* })
                });
                from_arms.push(quote! {
                    #name => {
                        let payload: #payload = #private::from_data(data)?;
                        ::core::result::Result::Ok(::core::option::Option::Some(
                            Self::#variant { #(#members: payload.#members),* }
                        ))
                    }
                });
                schemas.push(quote!((#name, #private::schema::<#payload>(generator))));
            }
            Shape::Unit | Shape::Invalid => {
                payloads.push(quote! {
                    #[derive(#private::serde::Serialize, #private::serde::Deserialize, #private::schemars::JsonSchema)]
                    #[serde(crate = #serde_crate, rename = #name)]
                    #[schemars(crate = #schemars_crate)]
                    #[allow(non_camel_case_types)]
                    #(#attrs)*
                    struct #payload {}
                });
                to_arms.push(quote!(Self::#variant { .. } => #private::to_data(&#payload {})));
                // An invalid variant (reported) is never read back.
                if let Shape::Unit = event.shape {
                    from_arms.push(quote! {
                        #name => {
                            let _: #payload = #private::from_data(data)?;
                            ::core::result::Result::Ok(::core::option::Option::Some(Self::#variant))
                        }
                    });
                }
                schemas.push(quote!((#name, #private::schema::<#payload>(generator))));
            }
            Shape::Payload(ty) => {
                to_arms.push(quote!(Self::#variant(payload) => #private::to_data(payload)));
                from_arms.push(quote! {
                    #name => ::core::result::Result::Ok(::core::option::Option::Some(
                        Self::#variant(#private::from_data::<#ty>(data)?)
                    ))
                });
                schemas.push(quote!((#name, #private::schema::<#ty>(generator))));
            }
        }
    }

    let names = def.events.iter().map(|e| &e.name);
    let all: Vec<&str> = def.events.iter().map(|e| e.name.as_str()).collect();
    let deprecated = version::deprecated(&all);
    let deprecated = (!deprecated.is_empty())
        .then(|| quote!(const DEPRECATED: &'static [&'static str] = &[#(#deprecated),*];));
    let (name_body, to_body) = if def.events.is_empty() {
        (quote!(match *self {}), quote!(match *self {}))
    } else {
        (
            quote!(match self { #(#name_arms,)* }),
            quote!(match self { #(#to_arms,)* }),
        )
    };
    let apply = quote_spanned! {state.span()=>
        <#state as #private::Patch<#ident>>::patch(state, self)
    };
    let passthrough = def.passthrough.map(|_| passthrough(def, state, &private));

    quote! {
        #item

        const _: () = {
            #(#payloads)*

            #[automatically_derived]
            impl #private::Event for #ident {
                type State = #state;
                const NAMES: &'static [&'static str] = &[#(#names),*];
                #deprecated

                fn name(&self) -> &'static str {
                    #name_body
                }

                fn to_data(&self) -> ::core::result::Result<#private::Data, #private::serde_json::Error> {
                    #to_body
                }

                fn from_data(
                    name: &str,
                    data: &#private::RawValue,
                ) -> ::core::result::Result<::core::option::Option<Self>, #private::serde_json::Error> {
                    match name {
                        #(#from_arms,)*
                        _ => ::core::result::Result::Ok(::core::option::Option::None),
                    }
                }

                fn apply(&self, state: &mut #state) {
                    #apply
                }

                fn schemas(
                    generator: &mut #private::SchemaGenerator,
                ) -> ::std::vec::Vec<(&'static str, #private::Schema)> {
                    ::std::vec![#(#schemas),*]
                }
            }

            #[automatically_derived]
            impl #private::Emits for #state {
                type Event = #ident;
            }

            #[automatically_derived]
            impl #root::checks::EventsOf<#state> for #ident {
                #[inline]
                fn into_event(self) -> #private::EventOf<#state> {
                    self
                }
            }

            #[automatically_derived]
            impl #private::StateActions for #state {
                fn actions() -> ::std::vec::Vec<#private::ActionEntry> {
                    <#state as #private::ActionList>::actions()
                }
            }

            #passthrough
        };
    }
}

/// `impl Patch<Events> for State` assigning each event field to the same-named state field,
/// spanned on the event field so rustc reports a missing or mistyped state field there.
fn passthrough(def: &EmitsDef, state: &Path, private: &TokenStream) -> TokenStream {
    let ident = &def.item.ident;
    let arms = def.events.iter().map(|event| {
        let variant = &event.ident;
        match &event.shape {
            Shape::Named(fields) => {
                let members: Vec<_> = fields
                    .iter()
                    .map(|f| f.ident.clone().expect("named"))
                    .collect();
                let assigns = members
                    .iter()
                    .map(|m| quote_spanned!(m.span()=> self.#m = ::core::clone::Clone::clone(#m);));
                quote!(#ident::#variant { #(#members),* } => { #(#assigns)* })
            }
            _ => quote!(#ident::#variant { .. } => {}),
        }
    });
    let body = if def.events.is_empty() {
        quote!(match *event {})
    } else {
        quote!(match event { #(#arms)* })
    };
    let state_tokens = state.to_token_stream();
    quote! {
        #[automatically_derived]
        impl #private::Patch<#ident> for #state_tokens {
            fn patch(&mut self, event: &#ident) {
                #body
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn run(args: TokenStream, item: ItemEnum) -> (EmitsDef, Vec<String>) {
        let mut cx = Ctxt::default();
        let def = parse(&mut cx, args, item);
        check(&mut cx, &def);
        (def, cx.messages())
    }

    #[test]
    fn reads_state_flag_and_shapes() {
        let (def, errors) = run(
            quote!(Cart, passthrough),
            parse_quote!(
                enum E {
                    A { x: u32 },
                    B,
                    C {},
                }
            ),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(def.state, Some(parse_quote!(Cart)));
        assert!(def.passthrough.is_some());
        assert!(matches!(def.events[1].shape, Shape::Unit));
    }

    #[test]
    fn collects_every_variant_error() {
        let (_, errors) = run(
            quote!(Cart, passthrough, pass),
            parse_quote!(
                enum E {
                    A(u32, u32),
                    B(Money),
                    C_v02,
                    D_v1,
                }
            ),
        );
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with(
            "unknown argument `pass` of `#[emits]`; expected one of `passthrough`, `crate`"
        ));
        assert!(errors[1].starts_with("event `A` has 2 unnamed fields"));
        assert!(errors[2].starts_with("`passthrough` copies named event fields"));
        assert_eq!(
            errors[3],
            "write `C_v2`: event versions have no leading zeros"
        );
        assert!(errors[4].starts_with("`D_v1` is not a version"));
    }

    #[test]
    fn requires_the_state() {
        let out = expand(
            quote!(passthrough),
            quote!(
                enum E {
                    A,
                }
            ),
        );
        assert!(
            out.to_string()
                .contains("expected the state first: `#[emits(Cart)]`")
        );
    }

    #[test]
    fn rejects_a_struct() {
        let out = expand(
            quote!(Cart),
            quote!(
                struct E;
            ),
        );
        assert!(
            out.to_string()
                .contains("`#[emits]` goes on an enum, not on a struct")
        );
    }

    #[test]
    fn strips_serde_attributes_without_serde_derives() {
        let out = expand(
            quote!(Cart),
            quote!(
                enum E {
                    #[serde(rename = "b")]
                    A {
                        #[serde(default)]
                        #[schemars(range(min = 1))]
                        x: u32,
                    },
                }
            ),
        );
        let file: syn::File = syn::parse2(out).unwrap();
        let syn::Item::Enum(e) = &file.items[0] else {
            panic!("enum first")
        };
        assert!(e.variants[0].attrs.is_empty());
        assert!(e.variants[0].fields.iter().all(|f| f.attrs.is_empty()));
    }

    #[test]
    fn snapshot() {
        let out = expand(
            quote!(Account),
            quote! {
                #[derive(Debug, Clone)]
                pub enum AccountEvent {
                    /// Money came in.
                    Deposited { amount: u64 },
                    Deposited_v2 {
                        amount: u64,
                        #[serde(default, skip_serializing_if = "String::is_empty")]
                        memo: String,
                    },
                    Closed,
                }
            },
        );
        insta::assert_snapshot!(prettyplease::unparse(&syn::parse2(out).unwrap()));
    }

    #[test]
    fn snapshot_passthrough() {
        let out = expand(
            quote!(Profile, passthrough),
            quote! {
                pub enum ProfileEvent {
                    Renamed { name: String },
                    Cleared,
                }
            },
        );
        insta::assert_snapshot!(prettyplease::unparse(&syn::parse2(out).unwrap()));
    }
}
