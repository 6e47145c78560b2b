//! `#[reaction(on = Enum::Variant, to = ...)]`: an `async fn` becomes a reaction, a unit
//! struct of the same name implementing `Reaction`, with its resolver classified here, at
//! compile time: `to = "stream"`, `to = _this_` and `void` are static (no correlation scan),
//! `to = function` or `to = |event| ...` is dynamic.
//!
//! The handler's parameters are `field bindings*, [event: &Committed<E>], app: &Scope`: a
//! field binding (`amount: &u64`, `_0: &Payload` for a tuple variant's payload) is
//! destructured from the event's variant by the generated `handle`, on the user's tokens,
//! so rustc reports a wrong field name or type where the user wrote it.

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
    "timeout_ms",
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
    /// `timeout_ms = N`, at least 1.
    pub(crate) timeout_ms: Option<Num>,
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
        timeout_ms: None,
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
        "timeout_ms" => def.timeout_ms = number(cx, arg, "timeout_ms", u64::MAX, 1),
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

/// An integer literal in `min..=max`: `retries = 5`, `base_ms = 100`, `timeout_ms = 30000`.
fn number(cx: &mut Ctxt, arg: &Arg, key: &str, max: u64, min: u64) -> Option<Num> {
    let what = if key == "retries" {
        "a number of retries".to_owned()
    } else {
        format!("a number of milliseconds, at least {min}")
    };
    // A plausible value for the key, shown in the "expects" messages.
    let example = match key {
        "retries" => 3,
        "base_ms" => 100,
        "max_ms" => 5000,
        _ => 30_000,
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
                format!("`{key}` expects {what}: `{key} = {example}`"),
            );
            return None;
        }
        _ => {
            cx.error(
                arg.span(),
                format!("`{key}` expects {what}: `{key} = {example}`"),
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

/// What one parameter of the handler is: its role follows from its place and its type.
///
/// The last parameter is the scope. Before it, a parameter whose type names `Committed`
/// (`&Committed<E>`, by the last segment of its path) is the committed event, one whose type
/// names `Scope` is a misplaced scope, and any other is a field binding. Only the place is
/// decided here: the types themselves are checked by rustc, on the user's tokens.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    /// `amount: &u64`: borrows a field of the event's variant.
    Field,
    /// `event: &Committed<E>`.
    Event,
    /// `app: &Scope`.
    Scope,
}

/// The last segment of the path a type names, under one reference: `Committed` for
/// `&act_runtime::model::Committed<E>`.
fn type_name(ty: &syn::Type) -> Option<String> {
    let ty = match ty {
        syn::Type::Reference(r) => &*r.elem,
        other => other,
    };
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().map(|s| s.ident.to_string())
        }
        _ => None,
    }
}

/// The handler's typed parameters with their roles, in order.
pub(crate) fn params(sig: &syn::Signature) -> Vec<(&syn::PatType, Role)> {
    let typed: Vec<_> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            syn::FnArg::Typed(t) => Some(t),
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    let last = typed.len().saturating_sub(1);
    typed
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let role = match type_name(&t.ty).as_deref() {
                _ if i == last => Role::Scope,
                Some("Committed") => Role::Event,
                Some("Scope") => Role::Scope,
                _ => Role::Field,
            };
            (t, role)
        })
        .collect()
}

/// A field binding, read from a parameter: `amount: &u64` binds the field `amount`, `_0:
/// &Payload` the tuple field `0`.
pub(crate) struct Binding<'a> {
    /// The parameter's name, which is also the local the generated code binds.
    pub(crate) ident: &'a syn::Ident,
    /// The field it binds, on the span of `ident` (rustc's "no field named" lands there).
    pub(crate) member: syn::Member,
    pub(crate) ty: &'a syn::Type,
}

/// The binding of a field parameter, when its pattern is a plain (or `mut`) name.
pub(crate) fn binding(param: &syn::PatType) -> Option<Binding<'_>> {
    let syn::Pat::Ident(p) = &*param.pat else {
        return None;
    };
    if p.by_ref.is_some() || p.subpat.is_some() {
        return None;
    }
    let name = p.ident.unraw().to_string();
    // `_0`, `_1`, ...: a tuple field, by position (`_01` is a name).
    let position = name
        .strip_prefix('_')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .filter(|n| *n == "0" || !n.starts_with('0'))
        .and_then(|n| n.parse::<u32>().ok());
    let member = match position {
        Some(index) => syn::Member::Unnamed(syn::Index {
            index,
            span: p.ident.span(),
        }),
        None => syn::Member::Named(p.ident.clone()),
    };
    Some(Binding {
        ident: &p.ident,
        member,
        ty: &param.ty,
    })
}

/// A type as a user would write it: `&Vec<String>`, not `& Vec < String >`.
fn type_string(ty: &syn::Type) -> String {
    let mut s = ty.to_token_stream().to_string();
    for (from, to) in [
        ("& ", "&"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (":: ", "::"),
        (" ::", "::"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
        ("' ", "'"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// A field parameter as it should be written: its name (or `field` when it has none) and
/// its type, borrowed.
fn field_param(param: &syn::PatType) -> String {
    let name = match &*param.pat {
        syn::Pat::Ident(p) => p.ident.to_string(),
        _ => "field".to_owned(),
    };
    let ty = match &*param.ty {
        syn::Type::Reference(r) => &*r.elem,
        other => other,
    };
    format!("{name}: &{}", type_string(ty))
}

/// The signature a reaction must have, with its event enum when known: the canonical
/// `(event, app)` one, or, when the handler binds fields, its field parameters followed by
/// the event (if it takes it) and the scope.
fn signature(def: &ReactionDef) -> String {
    let sig = &def.item.sig;
    let params = params(sig);
    let fields: Vec<String> = params
        .iter()
        .filter(|(_, role)| *role == Role::Field)
        .map(|(p, _)| field_param(p))
        .collect();
    let event = format!("event: &Committed<{}>", events_name(def));
    let inputs = if fields.is_empty() {
        format!("{event}, app: &Scope")
    } else if params
        .iter()
        .any(|(p, _)| type_name(&p.ty).as_deref() == Some("Committed"))
    {
        format!("{}, {event}, app: &Scope", fields.join(", "))
    } else {
        format!("{}, app: &Scope", fields.join(", "))
    };
    format!(
        "`async fn {}({inputs}) -> Result<(), ReactionError>`",
        sig.ident
    )
}

fn events_name(def: &ReactionDef) -> String {
    def.on.as_ref().map_or("Events".to_owned(), |(events, _)| {
        events.to_token_stream().to_string().replace(' ', "")
    })
}

/// `Events::Variant`, as written in `on`.
fn variant_name(def: &ReactionDef) -> String {
    def.on
        .as_ref()
        .map_or("Events::Variant".to_owned(), |(_, variant)| {
            format!("{}::{variant}", events_name(def))
        })
}

/// The checks of one reaction's handler; returns whether its shape lets the generated code
/// call it (the types are then checked by rustc, on the user's tokens).
///
/// The parameters are `field bindings*, [event: &Committed<E>], app: &Scope`: one error per
/// misplaced or malformed parameter. A name bound twice is left to rustc (E0415, on the
/// user's second parameter), and the handler is then not called.
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
    let mut duplicate = false;
    if let Some(receiver) = sig.receiver() {
        cx.error_spanned(
            receiver,
            format!("a reaction is a free function, without `self`: {expected}"),
        );
    } else {
        duplicate = check_params(cx, def, &expected);
    }
    if let syn::ReturnType::Default = sig.output {
        cx.error(
            sig.paren_token.span.close(),
            format!("a reaction returns `Result<(), ReactionError>`: {expected}"),
        );
    }
    cx.len() == before && !duplicate
}

/// The parameters' places and shapes; returns whether a name is bound twice.
fn check_params(cx: &mut Ctxt, def: &ReactionDef, expected: &str) -> bool {
    let sig = &def.item.sig;
    let params = params(sig);
    let misplaced_scope = params[..params.len().saturating_sub(1)]
        .iter()
        .find(|(_, role)| *role == Role::Scope);
    let mut scope_reported = false;
    match params.last() {
        None => cx.error(
            sig.paren_token.span.join(),
            format!("a reaction takes the scope, `app: &Scope`, as its last parameter: {expected}"),
        ),
        // The scope forgotten, or put before the event.
        Some((last, _)) if type_name(&last.ty).as_deref() == Some("Committed") => {
            match misplaced_scope {
                Some((scope, _)) => cx.error_spanned(
                    scope,
                    format!("a reaction takes the scope last, after the event: {expected}"),
                ),
                None => cx.error(
                    sig.paren_token.span.join(),
                    format!(
                        "a reaction takes the scope, `app: &Scope`, as its last parameter, after the event: {expected}"
                    ),
                ),
            }
            scope_reported = true;
        }
        Some(_) => {}
    }
    if let Some((scope, _)) = misplaced_scope.filter(|_| !scope_reported) {
        cx.error_spanned(
            scope,
            format!("the scope is a reaction's last parameter: {expected}"),
        );
    }
    let mut event = None;
    let mut order_reported = false;
    let mut names = Vec::new();
    let mut duplicate = false;
    for (i, (param, role)) in params.iter().enumerate() {
        if let syn::Pat::Ident(p) = &*param.pat {
            let name = p.ident.unraw().to_string();
            duplicate |= names.contains(&name);
            names.push(name);
        }
        if i + 1 == params.len() {
            break;
        }
        match role {
            Role::Event if event.is_some() => cx.error_spanned(
                param,
                format!("a reaction takes the event once: {expected}"),
            ),
            Role::Event => event = Some(param),
            Role::Scope => {}
            Role::Field => {
                if let Some(event) = event.filter(|_| !order_reported) {
                    order_reported = true;
                    cx.error_spanned(
                        event,
                        format!(
                            "the event comes after the field bindings, right before the scope: {expected}"
                        ),
                    );
                }
                check_field(cx, def, param);
            }
        }
    }
    duplicate
}

/// A field binding is `name: &Type`, named after a field of the variant (`_0` for a tuple
/// variant's payload).
fn check_field(cx: &mut Ctxt, def: &ReactionDef, param: &syn::PatType) {
    let variant = variant_name(def);
    let advice = field_param(param);
    let Some(binding) = binding(param) else {
        cx.error_spanned(
            &param.pat,
            format!(
                "a field binding is named after a field of `{variant}` (`_0` for a tuple variant's payload): `{advice}`"
            ),
        );
        return;
    };
    match binding.ty {
        syn::Type::Reference(r) if r.mutability.is_some() => cx.error_spanned(
            r,
            format!("a field binding borrows its field immutably, the event is shared: `{advice}`"),
        ),
        syn::Type::Reference(_) => {}
        ty => cx.error_spanned(
            ty,
            format!("a field binding borrows its field, it cannot take it by value: `{advice}`"),
        ),
    }
}

/// The struct and the value of the user's name, the `Reaction` impl (with the handler nested
/// in it), and the check that the event variant exists. When the handler cannot be called
/// (`callable` is false) or the target is wrong, the impl is still generated, with a body that
/// does not call it, so the macro's own error is the only one; without a valid `on`, the item
/// is emitted unchanged.
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
    let options = options(def, &private);
    // With field bindings, the handler's destructuring checks the variant (one error, on the
    // user's variant); else this does.
    let binds_fields = callable
        && params(&item.sig)
            .iter()
            .any(|(_, role)| *role == Role::Field);
    let variant_check = (!binds_fields).then(|| {
        let check = quote_spanned! {variant.span()=>
            let _ = |event: &#events| ::core::matches!(event, #events::#variant { .. });
        };
        quote! {
            const _: () = {
                #check
            };
        }
    });
    let body = if callable {
        call_handler(def, &private, events, variant)
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
    // The struct lives in a module named after its definition site, so that each impl names
    // its own struct even when two reactions of a module share a name. The struct is braced,
    // so the re-export brings the type only; the value is a `const` of the user's name.
    let module = quote::format_ident!(
        "__act_reaction_{}_{}",
        ident.unraw(),
        location(ident.span())
    );
    // Both located on the user's name but marked as generated. Two reactions of one name in
    // one module then clash first on the `const`, a definition ("the name `record` is defined
    // multiple times", on the second name), and rustc drops the clash of the re-exports, on
    // the same span: no suggestion to rename a generated import with `as`.
    let user_span = Span::call_site().located_at(ident.span());
    let mut reexport = ident.clone();
    reexport.set_span(user_span);
    let value = quote_spanned! {user_span=>
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #vis const #reexport: #module::#ident = #module::#ident {};
    };
    quote! {
        #[allow(non_snake_case)]
        mod #module {
            #(#docs)*
            #[allow(non_camel_case_types)]
            #[derive(Debug, Clone, Copy, Default)]
            pub struct #ident {}
        }
        #[allow(unused_imports)]
        #vis use #module::#reexport;
        #value

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

        #variant_check
    }
}

/// `const OPTIONS`, spelling only the options given; the others come from
/// `ReactionOptions::DEFAULT`. `None` when no option is given.
fn options(def: &ReactionDef, private: &TokenStream) -> Option<TokenStream> {
    let mut fields = Vec::new();
    if let Some(retries) = &def.retries {
        fields.push(quote!(max_retries: #retries,));
    }
    if let Some(block) = &def.block_on_error {
        fields.push(quote!(block_on_error: #block,));
    }
    if let Some(b) = &def.backoff {
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
        fields.push(quote! {
            backoff: ::core::option::Option::Some(#private::Backoff {
                strategy: #private::BackoffStrategy::#strategy,
                base_ms: #base,
                max_ms: #max,
                jitter: #jitter,
            }),
        });
    }
    if let Some(ms) = &def.timeout_ms {
        fields.push(quote!(timeout: ::core::time::Duration::from_millis(#ms),));
    }
    (!fields.is_empty()).then(|| {
        quote! {
            // every option may be given, making the struct update a no-op
            #[allow(clippy::needless_update)]
            const OPTIONS: #private::ReactionOptions = #private::ReactionOptions {
                #(#fields)*
                ..#private::ReactionOptions::DEFAULT
            };
        }
    })
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
///
/// Field bindings are destructured from the event's variant (`let Events::Variant { amount,
/// .. } = &event.data`, the field names on the user's spans, so a wrong name is rustc's "no
/// field named" on the user's parameter), then assigned to the type the user wrote (`let
/// amount: &u64 = amount;`, so a wrong type is rustc's "mismatched types" on it, and deref
/// coercions apply).
fn call_handler(
    def: &ReactionDef,
    private: &TokenStream,
    events: &Path,
    variant: &syn::Ident,
) -> TokenStream {
    let sig = &def.item.sig;
    let ident = &sig.ident;
    let params = params(sig);
    let (Some(((scope_param, _), rest)), syn::ReturnType::Type(_, output_ty)) =
        (params.split_last(), &sig.output)
    else {
        // `check` rejected this shape already.
        return quote!(::core::unreachable!());
    };
    let expected = signature(def);
    let events_name = events_name(def);
    let note = format!("a reaction is {expected}");
    // Our locals, out of reach of the user's field names (a field may be named `scope`).
    let event_local = syn::Ident::new("__event", Span::mixed_site());
    let scope_local = syn::Ident::new("__scope", Span::mixed_site());
    let result_local = syn::Ident::new("__result", Span::mixed_site());
    // The identity traits are named after the reaction, so that the name rustc prints in
    // "the trait `..` is not implemented" reads in the user's terms and is unique in the
    // crate (two traits of one name print with their whole path, through the impl).
    let reaction = ident.unraw();
    let event_trait = quote::format_ident!("{reaction}_event_parameter");
    let scope_trait = quote::format_ident!("{reaction}_scope_parameter");
    let output_trait = quote::format_ident!("{reaction}_return_type");

    // The identity traits first, then the locals.
    let mut items = TokenStream::new();
    let mut locals = TokenStream::new();
    let mut args = Vec::new();
    let bindings: Vec<Binding> = rest
        .iter()
        .filter(|(_, role)| *role == Role::Field)
        .filter_map(|(p, _)| binding(p))
        .collect();
    if let Some((event_param, _)) = rest.iter().find(|(_, role)| *role == Role::Event) {
        let event_ty = &event_param.ty;
        let event_msg = format!(
            "reaction `{ident}` takes its event as `&Committed<{events_name}>`, not `{{Self}}`"
        );
        let cast = quote_spanned! {event_ty.span()=>
            <#event_ty as #event_trait<&'a #private::Committed<#events>>>::cast(event)
        };
        items.extend(quote! {
            #[allow(non_camel_case_types)]
            #[diagnostic::on_unimplemented(message = #event_msg, label = "expected `&Committed<_>` of the event's enum", note = #note)]
            trait #event_trait<T> {
                fn cast(value: T) -> Self;
            }
            impl<T> #event_trait<T> for T {
                fn cast(value: T) -> T {
                    value
                }
            }
        });
        locals.extend(quote!(let #event_local = #cast;));
    }
    let scope_ty = &scope_param.ty;
    let scope_msg = format!("reaction `{ident}` takes the scope as `&Scope`, not `{{Self}}`");
    let output_msg =
        format!("reaction `{ident}` returns `Result<(), ReactionError>`, not `{{Self}}`");
    let scope_cast = quote_spanned! {scope_ty.span()=>
        <#scope_ty as #scope_trait<&'a #private::Scope>>::cast(scope)
    };
    items.extend(quote! {
        #[allow(non_camel_case_types)]
        #[diagnostic::on_unimplemented(message = #scope_msg, label = "expected `&Scope`", note = #note)]
        trait #scope_trait<T> {
            fn cast(value: T) -> Self;
        }
        impl<T> #scope_trait<T> for T {
            fn cast(value: T) -> T {
                value
            }
        }
        #[allow(non_camel_case_types)]
        #[diagnostic::on_unimplemented(message = #output_msg, label = "expected `Result<(), ReactionError>`", note = #note)]
        trait #output_trait<T> {
            fn convert(self) -> T;
        }
        impl<T> #output_trait<T> for T {
            fn convert(self) -> T {
                self
            }
        }
    });
    locals.extend(quote!(let #scope_local = #scope_cast;));
    if !bindings.is_empty() {
        let name = def.name.value();
        let event_name = variant.unraw().to_string();
        // One pattern field per name (a name bound twice is not called: see `check`).
        let members = bindings.iter().map(|b| {
            let (member, ident) = (&b.member, b.ident);
            match member {
                syn::Member::Named(_) => quote!(#ident),
                syn::Member::Unnamed(_) => quote!(#member: #ident),
            }
        });
        let lets = bindings.iter().map(|b| {
            let (ident, ty) = (b.ident, b.ty);
            quote!(let #ident: #ty = #ident;)
        });
        locals.extend(quote! {
            // The drain hands a reaction only the events it is registered for.
            let #events::#variant { #(#members,)* .. } = &event.data else {
                return ::std::boxed::Box::pin(::core::future::ready(::core::result::Result::Err(
                    #private::ReactionError::fatal(::std::format!(
                        "reaction `{}` handles `{}` events, it was given a `{}` event",
                        #name,
                        #event_name,
                        event.name,
                    )),
                )));
            };
            #(#lets)*
        });
        args.extend(bindings.iter().map(|b| b.ident.to_token_stream()));
    }
    if rest.iter().any(|(_, role)| *role == Role::Event) {
        args.push(event_local.to_token_stream());
    }
    args.push(scope_local.to_token_stream());
    let output = quote_spanned! {output_ty.span()=>
        <#output_ty as #output_trait<::core::result::Result<(), #private::ReactionError>>>::convert(#result_local)
    };
    let call = quote_spanned!(ident.span()=> #ident(#(#args),*));
    // In a block of their own: the handler, an item of the enclosing block, cannot see them.
    quote! {{
        #items
        #locals
        ::std::boxed::Box::pin(async move {
            let #result_local = #call.await;
            #output
        })
    }}
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
    fn checks_the_timeout() {
        assert_eq!(
            run(quote!(
                on = E::A,
                to = "x",
                timeout_ms = 0,
                timeout_ms = "30s"
            )),
            [
                "`timeout_ms` cannot be zero: it is a number of milliseconds, at least 1",
                "duplicate argument `timeout_ms` of `#[reaction]`",
            ]
        );
        for (value, message) in [
            (
                quote!("30s"),
                "`timeout_ms` expects a number of milliseconds, at least 1: `timeout_ms = 30000`",
            ),
            (
                quote!(1.5),
                "`timeout_ms` expects a number of milliseconds, at least 1: `timeout_ms = 30000`",
            ),
            (
                quote!(-1),
                "`timeout_ms` cannot be negative: it is a number of milliseconds, at least 1",
            ),
            (
                quote!(30_000i64),
                "`timeout_ms` is an unsigned integer; drop the `i64` suffix",
            ),
        ] {
            assert_eq!(
                run(quote!(on = E::A, to = "x", timeout_ms = #value)),
                [message]
            );
        }
        assert_eq!(
            run(quote!(on = E::A, to = "x", timeout)),
            [
                "unknown argument `timeout` of `#[reaction]`; expected one of `on`, `to`, `void`, `name`, `retries`, `block_on_error`, `backoff`, `timeout_ms`, `crate`"
            ]
        );
        let mut cx = Ctxt::default();
        let item = parse_quote!(
            async fn r(s: &Scope) -> R {}
        );
        let def = parse(&mut cx, quote!(on = E::A, void, timeout_ms = 2500), item);
        assert_eq!(def.timeout_ms.map(|t| t.value), Some(2500));
        let options = options(&def, &quote!(p)).unwrap().to_string();
        assert!(
            options.contains("timeout : :: core :: time :: Duration :: from_millis (2500) ,"),
            "{options}"
        );
        assert!(!options.contains("max_retries"), "{options}");
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
                        "a reaction takes the scope, `app: &Scope`, as its last parameter, after the event: {sig}"
                    ),
                    format!("a reaction returns `Result<(), ReactionError>`: {sig}"),
                ]
            )
        );
    }

    fn check_fn(item: ItemFn) -> (bool, Vec<String>) {
        let mut cx = Ctxt::default();
        let def = parse(&mut cx, quote!(on = E::A, void), item);
        let callable = check(&mut cx, &def);
        (callable, cx.messages())
    }

    #[test]
    fn accepts_field_bindings_then_the_event_then_the_scope() {
        let forms: [ItemFn; 6] = [
            parse_quote!(
                async fn r(amount: &u64, app: &Scope) -> R {}
            ),
            parse_quote!(
                async fn r(_0: &Payload, app: &Scope) -> R {}
            ),
            parse_quote!(
                async fn r(mut a: &u64, r#type: &str, e: &Committed<E>, app: &Scope) -> R {}
            ),
            parse_quote!(
                async fn r(app: &Scope) -> R {}
            ),
            parse_quote!(
                async fn r(_: &act_runtime::model::Committed<E>, _: &Scope) -> R {}
            ),
            // The last parameter is the scope whatever its type: rustc checks it.
            parse_quote!(
                async fn r(amount: &u64, app: &Ctx) -> R {}
            ),
        ];
        for item in forms {
            let shown = item.sig.to_token_stream().to_string();
            assert_eq!(check_fn(item), (true, vec![]), "{shown}");
        }
        let roles =
            |item: ItemFn| -> Vec<Role> { params(&item.sig).into_iter().map(|(_, r)| r).collect() };
        assert_eq!(
            roles(parse_quote!(
                async fn r(a: &u64, e: &Committed<E>, s: &Scope) {}
            )),
            [Role::Field, Role::Event, Role::Scope]
        );
    }

    #[test]
    fn reads_field_members() {
        let member = |param: syn::PatType| match binding(&param).map(|b| b.member) {
            Some(syn::Member::Named(i)) => i.to_string(),
            Some(syn::Member::Unnamed(i)) => i.index.to_string(),
            None => "-".to_owned(),
        };
        assert_eq!(member(parse_quote!(amount: &u64)), "amount");
        assert_eq!(member(parse_quote!(mut amount: &u64)), "amount");
        assert_eq!(member(parse_quote!(r#type: &str)), "r#type");
        assert_eq!(member(parse_quote!(_0: &Payload)), "0");
        assert_eq!(member(parse_quote!(_12: &Payload)), "12");
        assert_eq!(member(parse_quote!(_01: &Payload)), "_01");
        assert_eq!(member(parse_quote!(_: &Payload)), "-");
        assert_eq!(member(parse_quote!(ref amount: u64)), "-");
    }

    #[test]
    fn checks_field_bindings() {
        assert_eq!(
            check_fn(parse_quote!(
                async fn r(
                    amount: u64,
                    (a, b): &(u8, u8),
                    ref c: &u8,
                    d: &mut Vec<String>,
                    app: &Scope,
                ) -> Result<(), ReactionError> {
                }
            )),
            (
                false,
                vec![
                    "a field binding borrows its field, it cannot take it by value: `amount: &u64`".to_owned(),
                    "a field binding is named after a field of `E::A` (`_0` for a tuple variant's payload): `field: &(u8, u8)`".to_owned(),
                    "a field binding is named after a field of `E::A` (`_0` for a tuple variant's payload): `c: &u8`".to_owned(),
                    "a field binding borrows its field immutably, the event is shared: `d: &Vec<String>`".to_owned(),
                ]
            )
        );
        // A name bound twice is rustc's error (E0415, on the user's parameter): no message of
        // ours, and the handler is not called.
        assert_eq!(
            check_fn(parse_quote!(
                async fn r(amount: &u64, amount: &u64, app: &Scope) -> R {}
            )),
            (false, vec![])
        );
    }

    #[test]
    fn checks_the_places_of_the_event_and_the_scope() {
        let sig = |inputs: &str| format!("`async fn r({inputs}) -> Result<(), ReactionError>`");
        let canonical = sig("event: &Committed<E>, app: &Scope");
        assert_eq!(
            check_fn(parse_quote!(
                async fn r(e: &Committed<E>, amount: &u64, app: &Scope) -> R {}
            )),
            (
                false,
                vec![format!(
                    "the event comes after the field bindings, right before the scope: {}",
                    sig("amount: &u64, event: &Committed<E>, app: &Scope")
                )]
            )
        );
        assert_eq!(
            check_fn(parse_quote!(
                async fn r(e: &Committed<E>, again: &Committed<E>, app: &Scope) -> R {}
            )),
            (
                false,
                vec![format!("a reaction takes the event once: {canonical}")]
            )
        );
        assert_eq!(
            check_fn(parse_quote!(
                async fn r(app: &Scope, e: &Committed<E>) -> R {}
            )),
            (
                false,
                vec![format!(
                    "a reaction takes the scope last, after the event: {canonical}"
                )]
            )
        );
        assert_eq!(
            check_fn(parse_quote!(
                async fn r(e: &Committed<E>, app: &Scope, extra: &u64) -> R {}
            )),
            (
                false,
                vec![format!(
                    "the scope is a reaction's last parameter: {canonical}"
                )]
            )
        );
        // The other parameters are still checked when the scope is missing.
        assert_eq!(
            check_fn(parse_quote!(
                async fn r(amount: u64, e: &Committed<E>) -> R {}
            )),
            (
                false,
                vec![
                    format!(
                        "a reaction takes the scope, `app: &Scope`, as its last parameter, after the event: {}",
                        sig("amount: &u64, event: &Committed<E>, app: &Scope")
                    ),
                    "a field binding borrows its field, it cannot take it by value: `amount: &u64`"
                        .to_owned(),
                ]
            )
        );
        assert_eq!(
            check_fn(parse_quote!(
                async fn r() -> R {}
            )),
            (
                false,
                vec![format!(
                    "a reaction takes the scope, `app: &Scope`, as its last parameter: {canonical}"
                )]
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
                    async fn r(amount: u64, _0: &P, e: &Committed<E>, s: &S) -> R {}
                ),
                quote!(
                    async fn r(a: &u8, a: &u8, s: &Scope) -> R {}
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

    /// Field bindings, the committed event and the scope; one option.
    #[test]
    fn snapshot_fields() {
        let out = expand(
            quote!(
                on = AccountEvent::Deposited,
                to = "audit",
                timeout_ms = 30000
            ),
            quote! {
                async fn audit(amount: &u64, by: &str, e: &Committed<AccountEvent>, app: &Scope) -> Result<(), ReactionError> {
                    Ok(())
                }
            },
        );
        insta::assert_snapshot!(prettyplease::unparse(&syn::parse2(out).unwrap()));
    }

    /// A tuple variant's payload, bound as `_0`, and the scope only.
    #[test]
    fn snapshot_tuple_payload() {
        let out = expand(
            quote!(on = AccountEvent::Noted, void),
            quote! {
                async fn note(_0: &Note, app: &Scope) -> Result<(), ReactionError> {
                    Ok(())
                }
            },
        );
        insta::assert_snapshot!(prettyplease::unparse(&syn::parse2(out).unwrap()));
    }
}
