//! `#[reaction(on = Enum::Variant, to = ...)]`: an `async fn` becomes a reaction, a unit
//! struct of the same name implementing `Reaction`, with its resolver classified here, at
//! compile time: `to = "stream"`, `to = _this_` and `void` are static (no correlation scan),
//! `to = function` or `to = |event| ...` is dynamic.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, LitStr, Path};

use crate::attr::{Arg, Args, Value};
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

/// A non-negative integer argument, read and range-checked, with the span of its literal.
#[derive(Clone, Copy)]
pub(crate) struct Num {
    pub(crate) value: u64,
    pub(crate) span: Span,
}

impl ToTokens for Num {
    /// The value as an unsuffixed literal on the user's span (a suffix such as `5u8` would
    /// otherwise clash with the field's type).
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let mut lit = Literal::u64_unsuffixed(self.value);
        lit.set_span(self.span);
        lit.to_tokens(tokens);
    }
}

/// `backoff(...)`.
#[derive(Default)]
pub(crate) struct BackoffDef {
    pub(crate) strategy: Option<(String, Span)>,
    pub(crate) base_ms: Option<Num>,
    pub(crate) max_ms: Option<Num>,
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
    pub(crate) retries: Option<Num>,
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
    let callable = check(&mut cx, &def);
    let out = generate(&def, callable);
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
    let mut target_seen = false;
    // `on` is reported missing only when absent (a malformed one has its own error).
    let has_on = args.args.iter().any(|a| a.name().as_deref() == Some("on"));
    args.read(cx, "reaction", KEYS, |cx, key, arg| match key {
        "on" => {
            def.on = cx.ok(arg
                .path()
                .and_then(|p| crate::action::split_variant(p, "on")))
        }
        "to" | "void" if target_seen => cx.error(
            arg.span(),
            "a reaction has one target: `to = ...` or `void`, not both",
        ),
        "to" => {
            target_seen = true;
            def.target = parse_target(cx, arg);
        }
        "void" => {
            target_seen = true;
            if cx.ok(arg.flag()).is_some() {
                def.target = Some(Target::Void);
            }
        }
        "name" => {
            if let Some(name) = cx.ok(arg.lit_str()) {
                if name.value().is_empty() {
                    cx.error(name.span(), "a reaction's `name` cannot be empty");
                } else {
                    def.name = name;
                }
            }
        }
        "retries" => def.retries = number(cx, arg, "retries", u64::from(u32::MAX), 0),
        "block_on_error" => def.block_on_error = cx.ok(lit_bool(arg)),
        "backoff" => def.backoff = parse_backoff(cx, arg),
        "crate" => krate = cx.ok(arg.path()),
        // `read` hands over only the keys listed in `KEYS`.
        _ => cx.error(arg.span(), format!("unsupported argument `{key}`")),
    });
    if def.on.is_none() && !has_on {
        cx.error(
            Span::call_site(),
            "a reaction names its event: `#[reaction(on = Events::Variant, ...)]`",
        );
    }
    if !target_seen {
        cx.error(
            Span::call_site(),
            "a reaction needs a target: `to = \"stream\"`, `to = _this_`, `to = resolver_fn`, `to = |event| ...`, or `void`",
        );
    }
    def.root = root::resolve(krate.as_ref());
    def
}

/// `to = "stream"`, `to = _this_`, `to = path` or `to = |event| ...`.
fn parse_target(cx: &mut Ctxt, arg: &Arg) -> Option<Target> {
    const EXPECTED: &str = "`to` expects a stream name (`to = \"stream\"`), `_this_` (the event's own stream), the path of a resolver function (`to = resolver`) or a closure (`to = |event| ...`)";
    let Value::Expr(expr) = &arg.value else {
        cx.error(arg.span(), EXPECTED);
        return None;
    };
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) if s.value().is_empty() => {
            cx.error(s.span(), "the target stream's name cannot be empty");
            None
        }
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Some(Target::Static(s.clone())),
        Expr::Path(p) if p.qself.is_none() && p.path.is_ident("_this_") => Some(Target::SameStream),
        Expr::Path(p) if p.qself.is_none() => Some(Target::Dynamic(expr.clone())),
        Expr::Closure(_) => Some(Target::Dynamic(expr.clone())),
        other => {
            cx.error_spanned(other, EXPECTED);
            None
        }
    }
}

/// An integer literal in `min..=max`: `retries = 5`, `base_ms = 100`.
fn number(cx: &mut Ctxt, arg: &Arg, key: &str, max: u64, min: u64) -> Option<Num> {
    let what = if key == "retries" {
        "a number of retries".to_owned()
    } else {
        format!("a number of milliseconds, at least {min}")
    };
    let lit = match &arg.value {
        Value::Expr(Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        })) => i,
        Value::Expr(
            neg @ Expr::Unary(syn::ExprUnary {
                op: syn::UnOp::Neg(_),
                ..
            }),
        ) => {
            cx.error_spanned(neg, format!("`{key}` cannot be negative: it is {what}"));
            return None;
        }
        Value::Expr(other) => {
            cx.error_spanned(
                other,
                format!("`{key}` expects {what}: `{key} = {}`", min.max(3)),
            );
            return None;
        }
        _ => {
            cx.error(
                arg.span(),
                format!("`{key}` expects {what}: `{key} = {}`", min.max(3)),
            );
            return None;
        }
    };
    let value = match lit.base10_parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => v,
        Ok(0) => {
            cx.error(lit.span(), format!("`{key}` cannot be zero: it is {what}"));
            return None;
        }
        _ => {
            cx.error(
                lit.span(),
                format!("`{key}` is out of range: it is {what}, at most {max}"),
            );
            return None;
        }
    };
    if !matches!(lit.suffix(), "" | "u8" | "u16" | "u32" | "u64" | "usize") {
        cx.error(
            lit.span(),
            format!(
                "`{key}` is an unsigned integer; drop the `{}` suffix",
                lit.suffix()
            ),
        );
        return None;
    }
    Some(Num {
        value,
        span: lit.span(),
    })
}

fn lit_bool(arg: &Arg) -> syn::Result<syn::LitBool> {
    match &arg.value {
        Value::Expr(Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(b),
            ..
        })) => Ok(b.clone()),
        Value::Expr(other) => Err(syn::Error::new_spanned(
            other,
            "`block_on_error` expects `true` or `false`",
        )),
        _ => Err(syn::Error::new(
            arg.span(),
            "`block_on_error` expects `true` or `false`: `block_on_error = false`",
        )),
    }
}

fn parse_backoff(cx: &mut Ctxt, arg: &Arg) -> Option<BackoffDef> {
    let Value::List(tokens) = &arg.value else {
        cx.error(arg.span(), "`backoff` expects a list: `backoff(exponential, base_ms = 100, max_ms = 5000, jitter)`");
        return None;
    };
    let args = Args::parse(cx, tokens.clone());
    let mut def = BackoffDef::default();
    for arg in &args.args {
        // `backoff(quadratic)`: a flag that is not a key reads as a strategy.
        if let (Some(name), Value::Flag) = (arg.name(), &arg.value)
            && !BACKOFF_KEYS.contains(&name.as_str())
        {
            cx.error(
                arg.span(),
                format!(
                    "unknown backoff strategy `{name}`; expected `fixed`, `linear` or `exponential`"
                ),
            );
        }
    }
    let args = crate::attr::Args {
        args: args
            .args
            .into_iter()
            .filter(|a| {
                !matches!(
                    (a.name(), &a.value),
                    (Some(n), Value::Flag) if !BACKOFF_KEYS.contains(&n.as_str())
                )
            })
            .collect(),
    };
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
        "base_ms" => def.base_ms = number(cx, arg, "base_ms", u64::MAX, 1),
        "max_ms" => def.max_ms = number(cx, arg, "max_ms", u64::MAX, 1),
        "jitter" => def.jitter = cx.ok(arg.flag()).is_some(),
        // `read` hands over only the keys listed in `BACKOFF_KEYS`.
        _ => cx.error(arg.span(), format!("unsupported argument `{key}`")),
    });
    if let Some(max) = def.max_ms {
        let strategy = def.strategy.as_ref().map_or("exponential", |(s, _)| s);
        if strategy != "exponential" {
            cx.error(
                max.span,
                format!("`max_ms` caps an exponential backoff; a {strategy} backoff has no cap"),
            );
        } else if let Some(base) = def.base_ms.filter(|b| b.value > max.value) {
            cx.error(
                max.span,
                format!(
                    "`max_ms` ({}) is below `base_ms` ({})",
                    max.value, base.value
                ),
            );
        }
    }
    Some(def)
}

fn set_strategy(cx: &mut Ctxt, def: &mut BackoffDef, strategy: &str, span: Span) {
    if def.strategy.is_some() {
        cx.error(
            span,
            "a backoff has one strategy: `fixed`, `linear` or `exponential`",
        );
    }
    def.strategy = Some((strategy.to_owned(), span));
}

/// The signature a reaction must have, with its event enum when known.
fn signature(def: &ReactionDef) -> String {
    format!(
        "`async fn {}(event: &Committed<{}>, app: &Scope) -> Result<(), ReactionError>`",
        def.item.sig.ident,
        events_name(def)
    )
}

fn events_name(def: &ReactionDef) -> String {
    def.on.as_ref().map_or("Events".to_owned(), |(events, _)| {
        events.to_token_stream().to_string().replace(' ', "")
    })
}

/// The checks of one reaction's handler; returns whether its shape lets the generated code
/// call it (the types are then checked by rustc, on the user's tokens).
pub(crate) fn check(cx: &mut Ctxt, def: &ReactionDef) -> bool {
    let before = cx.len();
    let sig = &def.item.sig;
    let expected = signature(def);
    if sig.asyncness.is_none() {
        cx.error(
            sig.fn_token.span,
            format!("a reaction is an `async fn`: {expected}"),
        );
    }
    if let Some(c) = &sig.constness {
        cx.error(c.span, format!("a reaction cannot be `const`: {expected}"));
    }
    if let syn::Safety::Unsafe(u) = &sig.safety {
        cx.error(u.span, format!("a reaction cannot be `unsafe`: {expected}"));
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned(abi, format!("a reaction cannot have an ABI: {expected}"));
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned(
            &sig.generics,
            format!("a reaction cannot be generic: {expected}"),
        );
    } else if let Some(w) = &sig.generics.where_clause {
        cx.error_spanned(w, format!("a reaction cannot be generic: {expected}"));
    }
    if let Some(v) = &sig.variadic {
        cx.error_spanned(v, format!("a reaction is not variadic: {expected}"));
    }
    if let Some(receiver) = sig.receiver() {
        cx.error_spanned(
            receiver,
            format!("a reaction is a free function, without `self`: {expected}"),
        );
    } else if sig.inputs.len() != 2 {
        let found = match sig.inputs.len() {
            0 => "none".to_owned(),
            n => n.to_string(),
        };
        cx.error(
            sig.paren_token.span.join(),
            format!(
                "a reaction takes two parameters, the event and the scope, not {found}: {expected}"
            ),
        );
    }
    if let syn::ReturnType::Default = sig.output {
        cx.error(
            sig.paren_token.span.close(),
            format!("a reaction returns `Result<(), ReactionError>`: {expected}"),
        );
    }
    cx.len() == before
}

/// The unit struct, the `Reaction` impl (with the handler nested in it), and the check that
/// the event variant exists. When the handler cannot be called (`callable` is false) or the
/// target is wrong, the impl is still generated, with a body that does not call it, so the
/// macro's own error is the only one; without a valid `on`, the item is emitted unchanged.
pub(crate) fn generate(def: &ReactionDef, callable: bool) -> TokenStream {
    let item = &def.item;
    let Some((events, variant)) = def.on.as_ref() else {
        return quote!(#item);
    };
    let root = &def.root;
    let private = quote!(#root::__private);
    let ident = &item.sig.ident;
    let vis = &item.vis;
    let docs = item.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let mut handler = item.clone();
    handler.attrs.retain(|a| !a.path().is_ident("doc"));
    handler.vis = syn::Visibility::Inherited;
    let name = &def.name;
    let event_name = variant.unraw().to_string();
    let (resolver, resolve) = match &def.target {
        Some(Target::Static(lit)) => (quote!(#private::Resolver::Static(#lit)), None),
        Some(Target::SameStream) => (quote!(#private::Resolver::SameStream), None),
        // A missing or malformed target has its error; `Void` keeps the impl well-formed.
        Some(Target::Void) | None => (quote!(#private::Resolver::Void), None),
        Some(Target::Dynamic(expr)) => {
            let call = match expr {
                // A closure's parameter type comes from the helper's bound.
                Expr::Closure(_) => quote_spanned! {expr.span()=>
                    fn __resolver<F, R>(f: F) -> F
                    where
                        F: ::core::ops::Fn(&#private::Committed<#events>) -> R,
                    {
                        f
                    }
                    #private::IntoResolved::into_resolved(__resolver(#expr)(event))
                },
                _ => quote_spanned! {expr.span()=>
                    #private::IntoResolved::into_resolved((#expr)(event))
                },
            };
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
    let body = if callable {
        call_handler(def, &private, events)
    } else {
        // The handler has an error of its own: keep it (its body is still checked), do not
        // call it.
        quote! {
            #[allow(dead_code)]
            #handler
            ::core::unreachable!()
        }
    };
    let handler = callable.then_some(&handler);
    // The struct lives in a module named after its definition site, and is re-exported:
    // two reactions of one name in one module then clash on the re-export only (one error,
    // on the second), while each impl still names its own struct.
    let module = quote::format_ident!(
        "__act_reaction_{}_{}",
        ident.unraw(),
        location(ident.span())
    );
    // Located on the user's name but marked as generated: a duplicate's error then shows
    // the attribute that generated the clashing re-export.
    let mut reexport = ident.clone();
    reexport.set_span(Span::call_site().located_at(ident.span()));
    quote! {
        #[allow(non_snake_case)]
        mod #module {
            #(#docs)*
            #[allow(non_camel_case_types)]
            #[derive(Debug, Clone, Copy, Default)]
            pub struct #ident;
        }
        #[allow(unused_imports)]
        #vis use #module::#reexport;

        #[automatically_derived]
        impl #private::Reaction for #module::#ident {
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
                #body
            }
        }

        const _: () = {
            #variant_check
        };
    }
}

/// `line_column` of a span in the user's file (`0_0` outside a macro, in unit tests).
fn location(span: Span) -> String {
    if proc_macro::is_available() {
        let span = span.unwrap();
        format!("{}_{}", span.line(), span.column())
    } else {
        "0_0".to_owned()
    }
}

/// Calls the handler, converting each argument into the parameter type the user wrote and
/// the result from the return type they wrote, through identity traits whose
/// `on_unimplemented` messages name the expected signature: a wrong type gives one error,
/// ours, on the user's type.
fn call_handler(def: &ReactionDef, private: &TokenStream, events: &Path) -> TokenStream {
    let sig = &def.item.sig;
    let ident = &sig.ident;
    let expected = signature(def);
    let events_name = events_name(def);
    let ty = |i: usize| match sig.inputs.iter().nth(i) {
        Some(syn::FnArg::Typed(t)) => Some(&*t.ty),
        _ => None,
    };
    let (Some(event_ty), Some(scope_ty), syn::ReturnType::Type(_, output_ty)) =
        (ty(0), ty(1), &sig.output)
    else {
        // `check` rejected this shape already.
        return quote!(::core::unreachable!());
    };
    let event_msg = format!(
        "reaction `{ident}` takes its event as `&Committed<{events_name}>`, not `{{Self}}`"
    );
    let scope_msg = format!("reaction `{ident}` takes the scope as `&Scope`, not `{{Self}}`");
    let output_msg =
        format!("reaction `{ident}` returns `Result<(), ReactionError>`, not `{{Self}}`");
    let note = format!("a reaction is {expected}");
    let event_arg = quote_spanned! {event_ty.span()=>
        <#event_ty as __EventParam<&'a #private::Committed<#events>>>::__cast(event)
    };
    let scope_arg = quote_spanned! {scope_ty.span()=>
        <#scope_ty as __ScopeParam<&'a #private::Scope>>::__cast(scope)
    };
    let output = quote_spanned! {output_ty.span()=>
        <#output_ty as __Output<::core::result::Result<(), #private::ReactionError>>>::__into(__result)
    };
    let call = quote_spanned!(ident.span()=> #ident(__event, __scope));
    quote! {
        #[diagnostic::on_unimplemented(message = #event_msg, label = "expected `&Committed<_>` of the event's enum", note = #note)]
        trait __EventParam<T> {
            fn __cast(value: T) -> Self;
        }
        impl<T> __EventParam<T> for T {
            fn __cast(value: T) -> T {
                value
            }
        }
        #[diagnostic::on_unimplemented(message = #scope_msg, label = "expected `&Scope`", note = #note)]
        trait __ScopeParam<T> {
            fn __cast(value: T) -> Self;
        }
        impl<T> __ScopeParam<T> for T {
            fn __cast(value: T) -> T {
                value
            }
        }
        #[diagnostic::on_unimplemented(message = #output_msg, label = "expected `Result<(), ReactionError>`", note = #note)]
        trait __Output<T> {
            fn __into(self) -> T;
        }
        impl<T> __Output<T> for T {
            fn __into(self) -> T {
                self
            }
        }
        let __event = #event_arg;
        let __scope = #scope_arg;
        ::std::boxed::Box::pin(async move {
            let __result = #call.await;
            #output
        })
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
                "a reaction has one target: `to = ...` or `void`, not both",
                "unknown backoff strategy `quadratic`; expected `fixed`, `linear` or `exponential`",
                "duplicate argument `retries` of `#[reaction]`",
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
    fn checks_numbers_and_the_backoff() {
        assert_eq!(
            run(quote!(
                on = E::A,
                to = "x",
                retries = 5_000_000_000,
                backoff(linear, base_ms = 0, max_ms = 10)
            )),
            [
                "`retries` is out of range: it is a number of retries, at most 4294967295",
                "`base_ms` cannot be zero: it is a number of milliseconds, at least 1",
                "`max_ms` caps an exponential backoff; a linear backoff has no cap",
            ]
        );
        assert_eq!(
            run(quote!(
                on = E::A,
                to = "",
                name = "",
                backoff(base_ms = 5i32)
            )),
            [
                "the target stream's name cannot be empty",
                "a reaction's `name` cannot be empty",
                "`base_ms` is an unsigned integer; drop the `i32` suffix",
            ]
        );
    }

    #[test]
    fn checks_the_handler_shape() {
        let check_fn = |item: ItemFn| {
            let mut cx = Ctxt::default();
            let def = parse(&mut cx, quote!(on = E::A, void), item);
            let callable = check(&mut cx, &def);
            (callable, cx.messages())
        };
        let sig = "`async fn r(event: &Committed<E>, app: &Scope) -> Result<(), ReactionError>`";
        assert_eq!(
            check_fn(parse_quote!(
                async fn r(e: &Committed<E>, s: &Scope) -> Result<(), ReactionError> {}
            )),
            (true, vec![])
        );
        assert_eq!(
            check_fn(parse_quote!(
                unsafe fn r<T>(e: &Committed<E>) {}
            )),
            (
                false,
                vec![
                    format!("a reaction is an `async fn`: {sig}"),
                    format!("a reaction cannot be `unsafe`: {sig}"),
                    format!("a reaction cannot be generic: {sig}"),
                    format!(
                        "a reaction takes two parameters, the event and the scope, not 1: {sig}"
                    ),
                    format!("a reaction returns `Result<(), ReactionError>`: {sig}"),
                ]
            )
        );
    }

    #[test]
    fn generates_without_panicking_on_any_error() {
        for args in [
            quote!(),
            quote!(on = E::A),
            quote!(on = E::A, to = 42),
            quote!(on = E, void),
            quote!(on = E::A, void, backoff),
            quote!(
                on = E::A,
                void,
                backoff(fixed, linear, base_ms = -1, jitter = 1)
            ),
            quote!(
                on = E::A,
                void,
                retries = "3",
                block_on_error = 1,
                crate = 1
            ),
            quote!(on = E::A, void, ::strange::key, = ,),
        ] {
            for item in [
                quote!(
                    async fn r(e: &C<E>, s: &S) -> R {}
                ),
                quote!(
                    fn r() {}
                ),
                quote!(
                    async fn r(self) -> R {}
                ),
                quote!(
                    struct S;
                ),
                quote!(not an item),
            ] {
                let out = expand(args.clone(), item);
                assert!(out.to_string().contains("compile_error"), "{args}");
            }
        }
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
