//! `#[state(...)]`: a struct becomes a state (name, initial value, snapshot predicate, and
//! the list of its actions).

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{ItemStruct, LitStr, Path};

use crate::attr::Args;
use crate::ctxt::Ctxt;
use crate::{derives, item, root};

const KEYS: &[&str] = &["name", "init", "snap", "actions", "crate"];

/// The parsed `#[state]`.
pub(crate) struct StateDef {
    pub(crate) item: ItemStruct,
    pub(crate) root: TokenStream,
    pub(crate) name: LitStr,
    pub(crate) init: Option<Path>,
    pub(crate) snap: Option<Path>,
    pub(crate) actions: Vec<Path>,
}

/// The entry point: parse, check, expand.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let Some(parsed) = item::parse(&mut cx, input.clone()) else {
        return item::unchanged(input, cx);
    };
    let syn::Item::Struct(item) = parsed else {
        let (span, what) = item::keyword(&parsed);
        cx.error(span, format!("`#[state]` goes on a struct, not on {what}: a state is the struct its events fold into"));
        return item::unchanged(input, cx);
    };
    let def = parse(&mut cx, args, item);
    check(&mut cx, &def);
    let generic = !def.item.generics.params.is_empty() || def.item.generics.where_clause.is_some();
    let out = if generic {
        emit_item(&def)
    } else {
        generate(&def)
    };
    let errors = cx.into_compile_errors();
    quote!(#out #errors)
}

/// Reads the arguments into a [`StateDef`]; missing ones take their defaults.
pub(crate) fn parse(cx: &mut Ctxt, args: TokenStream, item: ItemStruct) -> StateDef {
    let args = Args::parse(cx, args);
    let (mut name, mut init, mut snap, mut actions, mut krate) =
        (None, None, None, Vec::new(), None);
    args.read(cx, "state", KEYS, |cx, key, arg| match key {
        "name" => name = cx.ok(arg.lit_str()),
        "init" => init = cx.ok(arg.path()),
        "snap" => snap = cx.ok(arg.path()),
        "actions" => actions = cx.ok(arg.path_list()).unwrap_or_default(),
        "crate" => krate = cx.ok(arg.path()),
        _ => unreachable!("key not in KEYS"),
    });
    let name =
        name.unwrap_or_else(|| LitStr::new(&item.ident.unraw().to_string(), item.ident.span()));
    StateDef {
        root: root::resolve(krate.as_ref()),
        item,
        name,
        init,
        snap,
        actions,
    }
}

/// The checks one item can make on its own (the cross-item ones are generated).
pub(crate) fn check(cx: &mut Ctxt, def: &StateDef) {
    let generics = &def.item.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned(
            generics,
            "a state cannot be generic: it is stored and loaded by name, so `#[state]` needs a concrete type",
        );
    }
    if def.name.value().is_empty() {
        cx.error_spanned(&def.name, "a state's name cannot be empty");
    }
    for (i, action) in def.actions.iter().enumerate() {
        let key = action.to_token_stream().to_string();
        if def.actions[..i]
            .iter()
            .any(|a| a.to_token_stream().to_string() == key)
        {
            cx.error_spanned(
                action,
                format!(
                    "`{}` is listed twice in `actions(...)`",
                    key.replace(' ', "")
                ),
            );
        }
    }
}

/// The struct with its serde and schemars derives.
fn emit_item(def: &StateDef) -> TokenStream {
    let derives = derives::inject(&def.root, &def.item.attrs);
    let item = &def.item;
    quote!(#derives #item)
}

/// The struct, its `State` and `ActionList` impls and the checks of its action list.
pub(crate) fn generate(def: &StateDef) -> TokenStream {
    let StateDef { root, name, .. } = def;
    let private = quote!(#root::__private);
    let ident = &def.item.ident;
    let item = emit_item(def);
    let init = match &def.init {
        Some(path) => quote_spanned!(path.span()=> #path()),
        None => quote!(::core::default::Default::default()),
    };
    let snap = def.snap.as_ref().map(|path| {
        quote! {
            fn snap(snapshot: &#private::Snapshot<Self>) -> bool {
                #path(snapshot)
            }
        }
    });
    let actions = &def.actions;
    let asserts = actions.iter().map(
        |action| quote_spanned!(action.span()=> #root::checks::assert_action_of::<#ident, #action>();),
    );
    let mut unique = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        for b in &actions[i + 1..] {
            if a.to_token_stream().to_string() == b.to_token_stream().to_string() {
                continue; // listed twice: reported by `check`
            }
            let message = format!(
                "actions `{}` and `{}` of state `{}` share one name; give one of them another with `#[action({}, name = \"...\")]`",
                a.to_token_stream().to_string().replace(' ', ""),
                b.to_token_stream().to_string().replace(' ', ""),
                name.value(),
                ident,
            );
            unique.push(quote_spanned! {b.span()=>
                ::core::assert!(
                    !#private::str_eq(<#a as #private::Action>::NAME, <#b as #private::Action>::NAME),
                    #message
                );
            });
        }
    }
    quote! {
        #item

        #[automatically_derived]
        impl #private::State for #ident {
            const NAME: &'static str = #name;

            fn init() -> Self {
                #init
            }

            #snap
        }

        #[automatically_derived]
        impl #private::ActionList for #ident {
            fn actions() -> ::std::vec::Vec<#private::ActionEntry> {
                ::std::vec![#(#private::ActionEntry::of::<#actions>()),*]
            }
        }

        const _: () = {
            #(#asserts)*
            #(#unique)*
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn run(args: TokenStream, item: ItemStruct) -> (StateDef, Vec<String>) {
        let mut cx = Ctxt::default();
        let def = parse(&mut cx, args, item);
        check(&mut cx, &def);
        (def, cx.messages())
    }

    #[test]
    fn defaults_the_name_to_the_ident() {
        let (def, errors) = run(
            quote!(),
            parse_quote!(
                struct Cart {
                    items: Vec<u32>,
                }
            ),
        );
        assert!(errors.is_empty());
        assert_eq!(def.name.value(), "Cart");
        assert!(def.init.is_none() && def.snap.is_none() && def.actions.is_empty());
        assert_eq!(def.root.to_string(), ":: act_runtime");
    }

    #[test]
    fn collects_every_error() {
        let (_, errors) = run(
            quote!(name = "", actions(A, B, A), color = "red"),
            parse_quote!(
                struct Cart<T> {
                    items: Vec<T>,
                }
            ),
        );
        assert_eq!(
            errors,
            [
                "unknown argument `color` of `#[state]`; expected one of `name`, `init`, `snap`, `actions`, `crate`",
                "a state cannot be generic: it is stored and loaded by name, so `#[state]` needs a concrete type",
                "a state's name cannot be empty",
                "`A` is listed twice in `actions(...)`",
            ]
        );
    }

    #[test]
    fn crate_argument_overrides_the_root() {
        let (def, _) = run(
            quote!(crate = ::act),
            parse_quote!(
                struct Cart;
            ),
        );
        assert_eq!(def.root.to_string(), ":: act");
    }

    #[test]
    fn rejects_an_enum() {
        let out = expand(
            quote!(),
            quote!(
                enum Cart {
                    A,
                }
            ),
        );
        assert!(
            out.to_string()
                .contains("`#[state]` goes on a struct, not on an enum")
        );
    }

    #[test]
    fn snapshot() {
        let out = expand(
            quote!(
                name = "Cart",
                snap = every_three,
                actions(AddItem, CheckOut)
            ),
            quote! {
                #[derive(Debug, Clone, Default)]
                pub struct Cart { pub items: Vec<String> }
            },
        );
        insta::assert_snapshot!(prettyplease::unparse(&syn::parse2(out).unwrap()));
    }
}
