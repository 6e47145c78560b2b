//! `#[reaction(on = Enum::Variant, to = ...)]`: an `async fn` becomes a reaction, a unit
//! struct of the same name implementing `Reaction`, with its resolver classified here, at
//! compile time: `to = "stream"`, `to = _this_` and `void` are static (no correlation scan),
//! `to = function` or `to = |event| ...` is dynamic.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, LitStr, Path};

use crate::attr::{Args, Value};
use crate::ctxt::Ctxt;
use crate::{item, root};

const KEYS: &[&str] = &[
    "on",
    "to",
    "void",
    "name",
    "retries",
    "block_on_error",
    "backoff",
    "crate",
];
const BACKOFF_KEYS: &[&str] = &[
    "strategy",
    "fixed",
    "linear",
    "exponential",
    "base_ms",
    "max_ms",
    "jitter",
];

/// Where a reaction's events go.
pub(crate) enum Target {
    /// `to = "stream"`.
    Static(LitStr),
    /// `to = _this_`.
    SameStream,
    /// `void`.
    Void,
    /// `to = path` or `to = |event| ...`.
    Dynamic(Expr),
}

/// `backoff(...)`.
#[derive(Default)]
pub(crate) struct BackoffDef {
    pub(crate) strategy: Option<(String, Span)>,
    pub(crate) base_ms: Option<syn::LitInt>,
    pub(crate) max_ms: Option<syn::LitInt>,
    pub(crate) jitter: bool,
}

/// The parsed `#[reaction]`.
pub(crate) struct ReactionDef {
    pub(crate) item: ItemFn,
    pub(crate) root: TokenStream,
    /// `on = Enum::Variant`, split.
    pub(crate) on: Option<(Path, syn::Ident)>,
    pub(crate) target: Option<Target>,
    pub(crate) name: LitStr,
    pub(crate) retries: Option<syn::LitInt>,
    pub(crate) block_on_error: Option<syn::LitBool>,
    pub(crate) backoff: Option<BackoffDef>,
}

/// The entry point: parse, check, expand.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let Some(parsed) = item::parse(&mut cx, input.clone()) else {
        return item::unchanged(input, cx);
    };
    let syn::Item::Fn(item) = parsed else {
        let (span, what) = item::keyword(&parsed);
        cx.error(
            span,
            format!("`#[reaction]` goes on an `async fn (event: &Committed<Events>, app: &Scope) -> Result<(), ReactionError>`, not on {what}"),
        );
        return item::unchanged(input, cx);
    };
    let def = parse(&mut cx, args, item);
    check(&mut cx, &def);
    let out = match (&def.on, &def.target) {
        (Some(_), Some(_)) if def.item.sig.asyncness.is_some() => generate(&def),
        _ => {
            let item = &def.item;
            quote!(#item)
        }
    };
    let errors = cx.into_compile_errors();
    quote!(#out #errors)
}

/// Reads the arguments.
pub(crate) fn parse(cx: &mut Ctxt, args: TokenStream, item: ItemFn) -> ReactionDef {
    let args = Args::parse(cx, args);
    let mut def = ReactionDef {
        root: TokenStream::new(),
        on: None,
        target: None,
        name: LitStr::new(&item.sig.ident.unraw().to_string(), item.sig.ident.span()),
        retries: None,
        block_on_error: None,
        backoff: None,
        item,
    };
    let mut krate = None;
    let mut targets = 0;
    // `on` is reported missing only when absent (a malformed one has its own error).
    let has_on = args.args.iter().any(|a| a.name().as_deref() == Some("on"));
    args.read(cx, "reaction", KEYS, |cx, key, arg| match key {
        "on" => def.on = cx.ok(arg.path().and_then(|p| crate::action::split_variant(p, "on"))),
        "to" => {
            targets += 1;
            def.target = match &arg.value {
                Value::Expr(Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. })) => Some(Target::Static(s.clone())),
                Value::Expr(Expr::Path(p)) if p.path.is_ident("_this_") => Some(Target::SameStream),
                Value::Expr(e @ (Expr::Path(_) | Expr::Closure(_))) => Some(Target::Dynamic(e.clone())),
                _ => {
                    cx.error(
                        arg.span(),
                        "`to` expects a stream name (`to = \"stream\"`), `_this_` (the event's own stream), a resolver function or a closure",
                    );
                    None
                }
            };
        }
        "void" => {
            targets += 1;
            if cx.ok(arg.flag()).is_some() {
                def.target = Some(Target::Void);
            }
        }
        "name" => def.name = cx.ok(arg.lit_str()).unwrap_or_else(|| def.name.clone()),
        "retries" => def.retries = cx.ok(arg.lit_int()),
        "block_on_error" => def.block_on_error = cx.ok(lit_bool(arg)),
        "backoff" => def.backoff = parse_backoff(cx, arg),
        "crate" => krate = cx.ok(arg.path()),
        _ => unreachable!("key not in KEYS"),
    });
    if def.on.is_none() && !has_on {
        cx.error(
            Span::call_site(),
            "a reaction names its event: `#[reaction(on = Events::Variant, ...)]`",
        );
    }
    if targets == 0 {
        cx.error(
            Span::call_site(),
            "a reaction needs a target: `to = \"stream\"`, `to = _this_`, `to = resolver_fn`, `to = |event| ...`, or `void`",
        );
    } else if targets > 1 {
        cx.error(
            Span::call_site(),
            "a reaction has one target: `to = ...` or `void`, not both",
        );
    }
    def.root = root::resolve(krate.as_ref());
    def
}

fn lit_bool(arg: &crate::attr::Arg) -> syn::Result<syn::LitBool> {
    match &arg.value {
        Value::Expr(Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(b),
            ..
        })) => Ok(b.clone()),
        _ => Err(syn::Error::new(
            arg.span(),
            "`block_on_error` expects `true` or `false`",
        )),
    }
}

fn parse_backoff(cx: &mut Ctxt, arg: &crate::attr::Arg) -> Option<BackoffDef> {
    let Value::List(tokens) = &arg.value else {
        cx.error(arg.span(), "`backoff` expects a list: `backoff(exponential, base_ms = 100, max_ms = 5000, jitter)`");
        return None;
    };
    let args = Args::parse(cx, tokens.clone());
    let mut def = BackoffDef::default();
    args.read(cx, "reaction(backoff)", BACKOFF_KEYS, |cx, key, arg| match key {
        "strategy" => {
            if let Some(s) = cx.ok(arg.lit_str()) {
                match s.value().as_str() {
                    v @ ("fixed" | "linear" | "exponential") => set_strategy(cx, &mut def, v, s.span()),
                    other => cx.error(s.span(), format!("unknown backoff strategy `{other}`; expected `fixed`, `linear` or `exponential`")),
                }
            }
        }
        "fixed" | "linear" | "exponential" => {
            if cx.ok(arg.flag()).is_some() {
                set_strategy(cx, &mut def, key, arg.span());
            }
        }
        "base_ms" => def.base_ms = cx.ok(arg.lit_int()),
        "max_ms" => def.max_ms = cx.ok(arg.lit_int()),
        "jitter" => def.jitter = cx.ok(arg.flag()).is_some(),
        _ => unreachable!("key not in BACKOFF_KEYS"),
    });
    Some(def)
}

fn set_strategy(cx: &mut Ctxt, def: &mut BackoffDef, strategy: &str, span: Span) {
    if def.strategy.is_some() {
        cx.error(span, "the backoff has one strategy");
    }
    def.strategy = Some((strategy.to_owned(), span));
}

/// The checks of one reaction.
pub(crate) fn check(cx: &mut Ctxt, def: &ReactionDef) {
    let sig = &def.item.sig;
    if sig.asyncness.is_none() {
        cx.error(sig.fn_token.span, "a reaction is an `async fn`: `async fn name(event: &Committed<Events>, app: &Scope) -> Result<(), ReactionError>`");
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned(&sig.generics, "a reaction cannot be generic");
    }
    if sig.inputs.len() != 2 {
        cx.error_spanned(
            &sig.inputs,
            "a reaction takes two arguments: `(event: &Committed<Events>, app: &Scope)`",
        );
    }
    for lit in [&def.retries].into_iter().flatten() {
        cx.ok(lit.base10_parse::<u32>());
    }
    if let Some(b) = &def.backoff {
        for lit in [&b.base_ms, &b.max_ms].into_iter().flatten() {
            cx.ok(lit.base10_parse::<u64>());
        }
    }
}

/// The unit struct, the `Reaction` impl (with the handler nested in it), and the check that
/// the event variant exists.
pub(crate) fn generate(def: &ReactionDef) -> TokenStream {
    let root = &def.root;
    let private = quote!(#root::__private);
    let (events, variant) = def.on.as_ref().expect("checked");
    let item = &def.item;
    let ident = &item.sig.ident;
    let vis = &item.vis;
    let docs = item.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let mut handler = item.clone();
    handler.attrs.retain(|a| !a.path().is_ident("doc"));
    handler.vis = syn::Visibility::Inherited;
    let name = &def.name;
    let event_name = variant.unraw().to_string();
    let (resolver, resolve) = match def.target.as_ref().expect("checked") {
        Target::Static(lit) => (quote!(#private::Resolver::Static(#lit)), None),
        Target::SameStream => (quote!(#private::Resolver::SameStream), None),
        Target::Void => (quote!(#private::Resolver::Void), None),
        Target::Dynamic(expr) => {
            let call =
                quote_spanned!(expr.span()=> #private::IntoResolved::into_resolved((#expr)(event)));
            (
                quote!(#private::Resolver::Dynamic),
                Some(quote! {
                    fn resolve(
                        event: &#private::Committed<Self::Event>,
                    ) -> ::core::option::Option<#private::Resolved> {
                        #call
                    }
                }),
            )
        }
    };
    let options = (def.retries.is_some() || def.block_on_error.is_some() || def.backoff.is_some())
        .then(|| {
            let retries = def.retries.as_ref().map_or(quote!(3), |r| quote!(#r));
            let block = def
                .block_on_error
                .as_ref()
                .map_or(quote!(true), |b| quote!(#b));
            let backoff = match &def.backoff {
                None => quote!(::core::option::Option::None),
                Some(b) => {
                    let strategy = match b
                        .strategy
                        .as_ref()
                        .map_or("exponential", |(s, _)| s.as_str())
                    {
                        "fixed" => quote!(Fixed),
                        "linear" => quote!(Linear),
                        _ => quote!(Exponential),
                    };
                    let base = b.base_ms.as_ref().map_or(quote!(100), |l| quote!(#l));
                    let max = match &b.max_ms {
                        Some(l) => quote!(::core::option::Option::Some(#l)),
                        None => quote!(::core::option::Option::None),
                    };
                    let jitter = b.jitter;
                    quote! {
                        ::core::option::Option::Some(#private::Backoff {
                            strategy: #private::BackoffStrategy::#strategy,
                            base_ms: #base,
                            max_ms: #max,
                            jitter: #jitter,
                        })
                    }
                }
            };
            quote! {
                const OPTIONS: #private::ReactionOptions = #private::ReactionOptions {
                    max_retries: #retries,
                    block_on_error: #block,
                    backoff: #backoff,
                };
            }
        });
    let variant_check = quote_spanned! {variant.span()=>
        let _ = |event: &#events| ::core::matches!(event, #events::#variant { .. });
    };
    let call = quote_spanned!(ident.span()=> ::std::boxed::Box::pin(#ident(event, scope)));
    quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #ident;

        #[automatically_derived]
        impl #private::Reaction for #ident {
            type Event = #events;
            const NAME: &'static str = #name;
            const EVENT: &'static str = #event_name;
            const RESOLVER: #private::Resolver = #resolver;
            #options
            #resolve

            fn handle<'a>(
                &'a self,
                event: &'a #private::Committed<Self::Event>,
                scope: &'a #private::Scope,
            ) -> #private::BoxFuture<'a, ::core::result::Result<(), #private::ReactionError>> {
                #handler
                #call
            }
        }

        const _: () = {
            #variant_check
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn run(args: TokenStream) -> Vec<String> {
        let mut cx = Ctxt::default();
        let item: ItemFn = parse_quote!(
            async fn audit(e: &Committed<E>, app: &Scope) -> Result<(), ReactionError> {
                Ok(())
            }
        );
        let def = parse(&mut cx, args, item);
        check(&mut cx, &def);
        cx.messages()
    }

    #[test]
    fn classifies_resolvers() {
        let classify = |args: TokenStream| {
            let mut cx = Ctxt::default();
            let item: ItemFn = parse_quote!(
                async fn r(e: &C, s: &S) {}
            );
            match parse(&mut cx, args, item).target.unwrap() {
                Target::Static(_) => "static",
                Target::SameStream => "same",
                Target::Void => "void",
                Target::Dynamic(_) => "dynamic",
            }
        };
        assert_eq!(classify(quote!(on = E::A, to = "ledger")), "static");
        assert_eq!(classify(quote!(on = E::A, to = _this_)), "same");
        assert_eq!(classify(quote!(on = E::A, void)), "void");
        assert_eq!(classify(quote!(on = E::A, to = audit_stream)), "dynamic");
        assert_eq!(
            classify(quote!(on = E::A, to = |e| Some(e.stream.clone()))),
            "dynamic"
        );
    }

    #[test]
    fn collects_every_error() {
        assert_eq!(
            run(quote!(
                on = E::A,
                to = "x",
                void,
                backoff(quadratic),
                retries = 1,
                retries = 2
            )),
            [
                "unknown argument `quadratic` of `#[reaction(backoff)]`; expected one of `strategy`, `fixed`, `linear`, `exponential`, `base_ms`, `max_ms`, `jitter`",
                "duplicate argument `retries` of `#[reaction]`",
                "a reaction has one target: `to = ...` or `void`, not both",
            ]
        );
        assert_eq!(
            run(quote!()),
            [
                "a reaction names its event: `#[reaction(on = Events::Variant, ...)]`",
                "a reaction needs a target: `to = \"stream\"`, `to = _this_`, `to = resolver_fn`, `to = |event| ...`, or `void`",
            ]
        );
    }

    #[test]
    fn snapshot() {
        let out = expand(
            quote!(
                on = CounterEvent::Incremented,
                to = audit_stream,
                retries = 5,
                backoff(strategy = "fixed", base_ms = 20)
            ),
            quote! {
                /// Audits increments.
                pub async fn audit(e: &Committed<CounterEvent>, app: &Scope) -> Result<(), ReactionError> {
                    Ok(())
                }
            },
        );
        insta::assert_snapshot!(prettyplease::unparse(&syn::parse2(out).unwrap()));
    }
}
