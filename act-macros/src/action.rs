//! `#[action(State, ...)]` and the `#[given(...)]` invariants below it: a struct becomes an
//! action of a state, optionally with a generated handler that emits its own fields as one
//! event (`emit = Event::Variant`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{ItemStruct, LitInt, LitStr, Member, Path};

use crate::attr::{self, Args, Given};
use crate::ctxt::Ctxt;
use crate::{derives, item, root};

const KEYS: &[&str] = &["name", "emit", "retries", "crate"];

/// The parsed `#[action]`.
pub(crate) struct ActionDef {
    /// The struct, `#[given]` attributes removed.
    pub(crate) item: ItemStruct,
    pub(crate) root: TokenStream,
    /// `None` when missing (reported).
    pub(crate) state: Option<Path>,
    pub(crate) name: LitStr,
    /// `emit = Event::Variant`, split into the enum's path and the variant.
    pub(crate) emit: Option<(Path, syn::Ident)>,
    pub(crate) retries: Option<LitInt>,
    pub(crate) given: Vec<Given>,
}

/// The entry point: parse, check, expand.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let Some(parsed) = item::parse(&mut cx, input.clone()) else {
        return item::unchanged(input, cx);
    };
    let syn::Item::Struct(item) = parsed else {
        let (span, what) = item::keyword(&parsed);
        cx.error(
            span,
            format!("`#[action]` goes on a struct, not on {what}: an action is a struct of the command's fields"),
        );
        return item::unchanged(input, cx);
    };
    let def = parse(&mut cx, args, item);
    check(&mut cx, &def);
    let generic = !def.item.generics.params.is_empty() || def.item.generics.where_clause.is_some();
    let out = if generic || def.state.is_none() {
        emit_item(&def)
    } else {
        generate(&def)
    };
    let errors = cx.into_compile_errors();
    quote!(#out #errors)
}

/// Whether `attr` is a `#[given(...)]` (or `#[act_runtime::given(...)]`).
fn is_given(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "given")
}

/// Reads the arguments and consumes the `#[given]` attributes.
pub(crate) fn parse(cx: &mut Ctxt, args: TokenStream, mut item: ItemStruct) -> ActionDef {
    let mut args = Args::parse(cx, args);
    let state = args.take_positional(&[]);
    if state.is_none() {
        cx.error(
            Span::call_site(),
            "expected the state first: `#[action(Cart)]`",
        );
    }
    let (mut name, mut emit, mut retries, mut krate) = (None, None, None, None);
    args.read(cx, "action", KEYS, |cx, key, arg| match key {
        "name" => name = cx.ok(arg.lit_str()),
        "emit" => emit = cx.ok(arg.path().and_then(|p| split_variant(p, "emit"))),
        "retries" => retries = cx.ok(arg.lit_int()),
        "crate" => krate = cx.ok(arg.path()),
        _ => unreachable!("key not in KEYS"),
    });
    let mut given = Vec::new();
    item.attrs.retain(|attr| {
        if !is_given(attr) {
            return true;
        }
        given.extend(cx.ok(attr::parse_given(attr)).unwrap_or_default());
        false
    });
    let name =
        name.unwrap_or_else(|| LitStr::new(&item.ident.unraw().to_string(), item.ident.span()));
    ActionDef {
        root: root::resolve(krate.as_ref()),
        item,
        state,
        name,
        emit,
        retries,
        given,
    }
}

/// `CartEvent::ItemAdded` into (`CartEvent`, `ItemAdded`); `key` is the argument's name.
pub(crate) fn split_variant(path: Path, key: &str) -> syn::Result<(Path, syn::Ident)> {
    let n = path.segments.len();
    if n < 2 {
        return Err(syn::Error::new_spanned(
            &path,
            format!("`{key}` names an event variant: `{key} = CartEvent::ItemAdded`"),
        ));
    }
    let variant = &path.segments[n - 1];
    if !variant.arguments.is_none() {
        return Err(syn::Error::new_spanned(
            variant,
            "an event variant takes no generic arguments",
        ));
    }
    let events = Path {
        leading_colon: path.leading_colon,
        segments: path.segments.iter().take(n - 1).cloned().collect(),
    };
    Ok((events, variant.ident.clone()))
}

/// The checks of one action.
pub(crate) fn check(cx: &mut Ctxt, def: &ActionDef) {
    let generics = &def.item.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned(
            generics,
            "an action cannot be generic: it is registered and called by name",
        );
    }
    if def.name.value().is_empty() {
        cx.error_spanned(&def.name, "an action's name cannot be empty");
    }
    if let Some(Err(e)) = def.retries.as_ref().map(LitInt::base10_parse::<u32>) {
        cx.push(e);
    }
}

/// The struct with its serde and schemars derives.
fn emit_item(def: &ActionDef) -> TokenStream {
    let derives = derives::inject(&def.root, &def.item.attrs);
    let item = &def.item;
    quote!(#derives #item)
}

/// The struct, its `Action` impl, and with `emit` its `Handle` impl and checks.
pub(crate) fn generate(def: &ActionDef) -> TokenStream {
    let ActionDef { root, name, .. } = def;
    let state = def.state.as_ref().expect("generate needs the state");
    let private = quote!(#root::__private);
    let ident = &def.item.ident;
    let item = emit_item(def);
    let state_ty = quote_spanned!(state.span()=> #state);
    let invariants = def.given.iter().map(|g| &g.description);
    let retries = def
        .retries
        .as_ref()
        .map(|r| quote!(const RETRIES: u32 = #r;));
    let given = (!def.given.is_empty()).then(|| {
        let checks = def.given.iter().map(|Given { predicate, description }| {
            let call = quote_spanned! {predicate.span()=>
                #root::checks::holds::<#state, _, _>(&#predicate, state, actor)
            };
            quote! {
                if !#call {
                    return ::core::result::Result::Err(#description);
                }
            }
        });
        quote! {
            fn given(state: &#state, actor: &#private::Actor) -> ::core::result::Result<(), &'static str> {
                #(#checks)*
                ::core::result::Result::Ok(())
            }
        }
    });
    let emits = def.emit.as_ref().map(|(_, variant)| {
        let name = variant.to_string();
        quote!(const EMITS: &'static [&'static str] = &[#name];)
    });
    let emit = def
        .emit
        .as_ref()
        .map(|(events, variant)| handle(def, state, events, variant, &private));
    quote! {
        #item

        #[automatically_derived]
        impl #root::checks::ActionOf<#state> for #ident {}

        #[automatically_derived]
        impl #private::Action for #ident {
            const NAME: &'static str = #name;
            type State = #state_ty;
            const INVARIANTS: &'static [&'static str] = &[#(#invariants),*];
            #emits
            #retries
            #given
        }

        #emit
    }
}

/// `impl Handle` emitting the action's fields as `events::variant`, plus the check that the
/// variant is not a deprecated version. That the enum is the state's is checked by
/// `event_of` in the handler, spanned on the enum's path (a second, `const` assertion of the
/// same bound would only repeat the message).
fn handle(
    def: &ActionDef,
    state: &Path,
    events: &Path,
    variant: &syn::Ident,
    private: &TokenStream,
) -> TokenStream {
    let ident = &def.item.ident;
    // Each field is cloned into a local first (its type is the action's, so the clone cannot
    // fail), then the local fills the variant's field: a field of another type is then a
    // plain "mismatched types" on the user's field, not an argument of `Clone::clone`.
    let (clones, fields): (Vec<_>, Vec<_>) = def
        .item
        .fields
        .members()
        .map(|m| {
            let (span, name) = match &m {
                Member::Named(i) => (i.span(), i.unraw().to_string()),
                Member::Unnamed(i) => (i.span, i.index.to_string()),
            };
            let local = quote::format_ident!(
                "__field_{}",
                name,
                span = Span::mixed_site().located_at(span)
            );
            (
                quote_spanned!(span=> let #local = ::core::clone::Clone::clone(&self.#m);),
                quote_spanned!(span=> #m: #local),
            )
        })
        .unzip();
    let root = &def.root;
    let event_path = quote_spanned!(variant.span()=> #events::#variant);
    let checked = quote_spanned! {events.span()=>
        #root::checks::event_of::<#state, #events>
    };
    let message = format!(
        "action `{}` emits `{}`, a deprecated event version; emit the latest version",
        ident.unraw(),
        variant.unraw()
    );
    let variant_name = variant.unraw().to_string();
    let not_deprecated = quote_spanned! {variant.span()=>
        const _: () = ::core::assert!(
            !#private::contains(<#events as #private::Event>::DEPRECATED, #variant_name),
            #message
        );
    };
    quote! {
        #[automatically_derived]
        impl #private::Handle for #ident {
            fn handle(
                &self,
                _: &#state,
                _: &#private::Target,
            ) -> #private::Emit<#private::EventOf<#state>> {
                #(#clones)*
                ::core::result::Result::Ok(::std::vec![#checked(#event_path { #(#fields),* })])
            }
        }

        #not_deprecated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn run(args: TokenStream, item: ItemStruct) -> (ActionDef, Vec<String>) {
        let mut cx = Ctxt::default();
        let def = parse(&mut cx, args, item);
        check(&mut cx, &def);
        (def, cx.messages())
    }

    #[test]
    fn reads_arguments_and_consumes_given() {
        let (def, errors) = run(
            quote!(
                Cart,
                name = "add",
                emit = events::CartEvent::ItemAdded,
                retries = 5
            ),
            parse_quote! {
                #[given(is_open = "closed")]
                #[derive(Debug)]
                #[act_runtime::given(rules::has_room = "full")]
                struct AddItem { sku: String }
            },
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(def.name.value(), "add");
        let (events, variant) = def.emit.unwrap();
        assert_eq!(events, parse_quote!(events::CartEvent));
        assert_eq!(variant, "ItemAdded");
        assert_eq!(def.given.len(), 2);
        assert_eq!(def.item.attrs.len(), 1, "only #[derive(Debug)] is left");
    }

    #[test]
    fn collects_every_error() {
        let (_, errors) = run(
            quote!(Cart, emit = ItemAdded, retries = -1, emits = X),
            parse_quote!(
                struct A<T>(T);
            ),
        );
        assert_eq!(
            errors,
            [
                "`emit` names an event variant: `emit = CartEvent::ItemAdded`",
                "`retries` expects an integer: `retries = 3`",
                "unknown argument `emits` of `#[action]`; expected one of `name`, `emit`, `retries`, `crate`",
                "an action cannot be generic: it is registered and called by name",
            ]
        );
    }

    #[test]
    fn requires_the_state() {
        let (_, errors) = run(
            quote!(name = "x"),
            parse_quote!(
                struct A;
            ),
        );
        assert_eq!(errors, ["expected the state first: `#[action(Cart)]`"]);
    }

    #[test]
    fn rejects_an_enum() {
        let out = expand(
            quote!(Cart),
            quote!(
                enum A {
                    X,
                }
            ),
        );
        assert!(
            out.to_string()
                .contains("`#[action]` goes on a struct, not on an enum")
        );
    }

    #[test]
    fn snapshot() {
        let out = expand(
            quote!(Cart, emit = CartEvent::ItemAdded),
            quote! {
                #[given(is_open = "cart is checked out")]
                #[derive(Debug)]
                pub struct AddItem { pub sku: String, pub qty: u32 }
            },
        );
        insta::assert_snapshot!(prettyplease::unparse(&syn::parse2(out).unwrap()));
    }
}
