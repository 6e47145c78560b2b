//! The arguments of the attribute macros: `#[state(name = "Cart", actions(A, B))]`,
//! `#[emits(Cart, passthrough)]`, `#[action(Cart, emit = CartEvent::ItemAdded)]`, and
//! `#[given(is_open = "cart is checked out")]`.
//!
//! Parsing is generic (a comma-separated list of `key`, `key = value` or `key(...)`); each
//! macro then reads the keys it knows through [`Args::read`], which reports unknown and
//! duplicated keys into the [`Ctxt`].

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Lit, LitInt, LitStr, Path, Token};

use crate::ctxt::Ctxt;

/// One argument.
pub(crate) struct Arg {
    /// `name` in `name = "Cart"`; the whole path when the argument is positional.
    pub(crate) key: Path,
    pub(crate) value: Value,
}

/// What follows an argument's key.
pub(crate) enum Value {
    /// Nothing: `passthrough`, or a positional `Cart`.
    Flag,
    /// `= value`.
    Expr(Expr),
    /// `(...)`.
    List(TokenStream),
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = Path::parse_mod_style(input)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Value::Expr(input.parse()?)
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            Value::List(content.parse()?)
        } else {
            Value::Flag
        };
        Ok(Arg { key, value })
    }
}

impl Arg {
    /// The key as a single identifier (`crate` included), if it is one.
    pub(crate) fn name(&self) -> Option<String> {
        let segments = &self.key.segments;
        (self.key.leading_colon.is_none() && segments.len() == 1)
            .then(|| segments[0].ident.to_string())
    }

    /// The span of the whole argument.
    pub(crate) fn span(&self) -> Span {
        self.key.span()
    }

    /// A string literal value: `name = "Cart"`.
    pub(crate) fn lit_str(&self) -> syn::Result<LitStr> {
        match &self.value {
            Value::Expr(Expr::Lit(lit)) => match &lit.lit {
                Lit::Str(s) => Ok(s.clone()),
                other => Err(syn::Error::new_spanned(
                    other,
                    self.expected("a string literal"),
                )),
            },
            _ => Err(self.unexpected("a string literal", "\"...\"")),
        }
    }

    /// An integer literal value: `retries = 3`.
    pub(crate) fn lit_int(&self) -> syn::Result<LitInt> {
        match &self.value {
            Value::Expr(Expr::Lit(lit)) => match &lit.lit {
                Lit::Int(i) => Ok(i.clone()),
                other => Err(syn::Error::new_spanned(other, self.expected("an integer"))),
            },
            _ => Err(self.unexpected("an integer", "3")),
        }
    }

    /// A path value: `init = Cart::new`, `crate = ::act`.
    pub(crate) fn path(&self) -> syn::Result<Path> {
        match &self.value {
            Value::Expr(Expr::Path(p)) if p.qself.is_none() => Ok(p.path.clone()),
            Value::Expr(other) => Err(syn::Error::new_spanned(other, self.expected("a path"))),
            _ => Err(self.unexpected("a path", "path")),
        }
    }

    /// A parenthesized, comma-separated list of paths: `actions(AddItem, CheckOut)`.
    pub(crate) fn path_list(&self) -> syn::Result<Vec<Path>> {
        match &self.value {
            Value::List(tokens) => {
                let parser = Punctuated::<Path, Token![,]>::parse_terminated;
                Ok(syn::parse::Parser::parse2(parser, tokens.clone())?
                    .into_iter()
                    .collect())
            }
            _ => Err(self.unexpected("a list", "(A, B)")),
        }
    }

    /// Checks that the argument is a bare flag: `passthrough`.
    pub(crate) fn flag(&self) -> syn::Result<()> {
        match &self.value {
            Value::Flag => Ok(()),
            _ => Err(syn::Error::new(
                self.span(),
                format!("`{}` takes no value", self.key.to_token_stream()),
            )),
        }
    }

    fn expected(&self, what: &str) -> String {
        format!("`{}` expects {what}", self.key.to_token_stream())
    }

    fn unexpected(&self, what: &str, example: &str) -> syn::Error {
        let key = self.key.to_token_stream();
        let sep = if example.starts_with('(') { "" } else { " = " };
        syn::Error::new(
            self.span(),
            format!("`{key}` expects {what}: `{key}{sep}{example}`"),
        )
    }
}

/// The arguments of one attribute.
pub(crate) struct Args {
    pub(crate) args: Vec<Arg>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let args = Punctuated::<Arg, Token![,]>::parse_terminated(input)?;
        Ok(Args {
            args: args.into_iter().collect(),
        })
    }
}

impl Args {
    /// Parses the arguments of `#[macro_name(...)]`, reporting a syntax error into `cx`.
    pub(crate) fn parse(cx: &mut Ctxt, tokens: TokenStream) -> Args {
        cx.ok(syn::parse2(tokens))
            .unwrap_or(Args { args: Vec::new() })
    }

    /// Removes and returns the first argument when it is a bare path (the state type in
    /// `#[emits(Cart)]` and `#[action(Cart)]`) and not one of `keys` (a flag).
    pub(crate) fn take_positional(&mut self, keys: &[&str]) -> Option<Path> {
        let first = self.args.first()?;
        let is_flag = first.name().is_some_and(|n| keys.contains(&n.as_str()));
        if matches!(first.value, Value::Flag) && !is_flag {
            Some(self.args.remove(0).key)
        } else {
            None
        }
    }

    /// Hands each argument whose key is one of `keys` to `f` (once per key: a second
    /// occurrence is reported as a duplicate); reports every other argument as unknown.
    pub(crate) fn read(
        self,
        cx: &mut Ctxt,
        macro_name: &str,
        keys: &[&str],
        mut f: impl FnMut(&mut Ctxt, &str, &Arg),
    ) {
        let mut seen: Vec<String> = Vec::new();
        for arg in &self.args {
            match arg.name().filter(|n| keys.contains(&n.as_str())) {
                Some(name) if seen.contains(&name) => {
                    cx.error(
                        arg.span(),
                        format!("duplicate argument `{name}` of `#[{macro_name}]`"),
                    );
                }
                Some(name) => {
                    f(cx, &name, arg);
                    seen.push(name);
                }
                None => cx.error(arg.span(), unknown(macro_name, &arg.key, keys)),
            }
        }
    }
}

/// The message of an unknown argument: names it and lists the valid ones.
fn unknown(macro_name: &str, key: &Path, keys: &[&str]) -> String {
    let list = keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let key = key.to_token_stream().to_string().replace(' ', "");
    format!("unknown argument `{key}` of `#[{macro_name}]`; expected one of {list}")
}

/// One `predicate = "description"` pair of `#[given(...)]`.
#[derive(Debug)]
pub(crate) struct Given {
    pub(crate) predicate: Path,
    pub(crate) description: LitStr,
}

impl Parse for Given {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let predicate = Path::parse_mod_style(input)?;
        let eq = input.parse::<Token![=]>();
        let description = eq.and_then(|_| input.parse::<LitStr>()).map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `predicate = \"description\"`: the predicate's path, then the \
                 message of the invariant it checks",
            )
        })?;
        Ok(Given {
            predicate,
            description,
        })
    }
}

/// Parses the list of one `#[given(...)]` attribute.
pub(crate) fn parse_given(attr: &syn::Attribute) -> syn::Result<Vec<Given>> {
    let list = attr.meta.require_list()?;
    let parser = Punctuated::<Given, Token![,]>::parse_terminated;
    Ok(syn::parse::Parser::parse2(parser, list.tokens.clone())?
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn read(args: TokenStream, keys: &[&str]) -> (Vec<String>, Vec<String>) {
        let mut cx = Ctxt::default();
        let args = Args::parse(&mut cx, args);
        let mut names = Vec::new();
        args.read(&mut cx, "state", keys, |_, name, _| {
            names.push(name.to_owned())
        });
        (names, cx.messages())
    }

    #[test]
    fn reads_known_keys_including_crate() {
        let (names, errors) = read(
            quote::quote!(name = "Cart", actions(A, B), crate = ::act),
            &["name", "actions", "crate"],
        );
        assert_eq!(names, ["name", "actions", "crate"]);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn reports_unknown_and_duplicate_keys() {
        let (_, errors) = read(
            quote::quote!(nme = "Cart", name = "A", name = "B"),
            &["name", "init"],
        );
        assert_eq!(
            errors,
            [
                "unknown argument `nme` of `#[state]`; expected one of `name`, `init`",
                "duplicate argument `name` of `#[state]`",
            ]
        );
    }

    #[test]
    fn takes_the_positional_state_but_not_a_flag() {
        let mut cx = Ctxt::default();
        let mut args = Args::parse(&mut cx, quote::quote!(crate::domain::Cart, passthrough));
        let state: Path = parse_quote!(crate::domain::Cart);
        assert_eq!(args.take_positional(&["passthrough"]), Some(state));
        assert!(args.take_positional(&["passthrough"]).is_none());
    }

    #[test]
    fn value_kinds_are_checked() {
        let arg: Arg = parse_quote!(name = Cart);
        assert_eq!(
            arg.lit_str().unwrap_err().to_string(),
            "`name` expects a string literal: `name = \"...\"`"
        );
        let arg: Arg = parse_quote!(retries);
        assert_eq!(
            arg.lit_int().unwrap_err().to_string(),
            "`retries` expects an integer: `retries = 3`"
        );
        let arg: Arg = parse_quote!(emit = CartEvent::ItemAdded);
        assert_eq!(arg.path().unwrap(), parse_quote!(CartEvent::ItemAdded));
    }

    #[test]
    fn parses_given_pairs() {
        let attr: syn::Attribute =
            parse_quote!(#[given(is_open = "closed", rules::has_items = "empty")]);
        let given = parse_given(&attr).unwrap();
        assert_eq!(given.len(), 2);
        assert_eq!(given[1].predicate, parse_quote!(rules::has_items));
        assert_eq!(given[1].description.value(), "empty");
        let attr: syn::Attribute = parse_quote!(#[given(is_open)]);
        assert!(
            parse_given(&attr)
                .unwrap_err()
                .to_string()
                .starts_with("expected `predicate = \"description\"`")
        );
    }
}
