//! The events a reader decodes: one `#[emits]` enum, or a union of several built with
//! [`event_set!`](crate::event_set) (a projection over the events of more than one state).

use serde_json::value::RawValue;

use super::Event;

/// A set of events a reader (a [`Projection`](crate::projections::Projection)) decodes from
/// the log: every `#[emits]` enum is one, and [`event_set!`](crate::event_set) makes a union
/// of several.
///
/// ```
/// use act_runtime::model::EventSet;
/// # use act_runtime::prelude::*;
/// # #[state(name = "Till", actions(Sell))]
/// # #[derive(Debug, Clone, Default)]
/// # pub struct Till { pub sold: u32 }
/// # #[emits(Till)]
/// # #[derive(Debug, Clone)]
/// # pub enum TillEvent { Sold { total: f64 } }
/// # impl Patch<TillEvent> for Till {
/// #     fn patch(&mut self, e: &TillEvent) { match e { TillEvent::Sold { .. } => self.sold += 1 } }
/// # }
/// # #[action(Till, emit = TillEvent::Sold)]
/// # pub struct Sell { pub total: f64 }
/// assert_eq!(<TillEvent as EventSet>::names(), ["Sold"]);
/// let data = serde_json::value::RawValue::from_string(r#"{"total":2.5}"#.to_owned()).unwrap();
/// assert!(matches!(TillEvent::decode("Sold", &data), Ok(Some(TillEvent::Sold { .. }))));
/// assert!(matches!(TillEvent::decode("Refunded", &data), Ok(None)));
/// ```
pub trait EventSet: Send + Sync + Sized + 'static {
    /// The names of every event in the set.
    fn names() -> Vec<&'static str>;
    /// The event stored as `name` with `data`; `Ok(None)` when `name` is not in the set.
    fn decode(name: &str, data: &RawValue) -> Result<Option<Self>, serde_json::Error>;
}

impl<E: Event> EventSet for E {
    fn names() -> Vec<&'static str> {
        E::NAMES.to_vec()
    }

    fn decode(name: &str, data: &RawValue) -> Result<Option<Self>, serde_json::Error> {
        E::from_data(name, data)
    }
}

/// Declares an enum whose variants each hold one `#[emits]` enum (or another set), and makes
/// it an [`EventSet`]: a projection over the events of several states.
///
/// ```
/// # use act_runtime::prelude::*;
/// # #[state(name = "Till", actions(Sell))]
/// # #[derive(Debug, Clone, Default)]
/// # pub struct Till { pub sold: u32 }
/// # #[emits(Till)]
/// # #[derive(Debug, Clone)]
/// # pub enum TillEvent { Sold { total: f64 } }
/// # impl Patch<TillEvent> for Till {
/// #     fn patch(&mut self, e: &TillEvent) { match e { TillEvent::Sold { .. } => self.sold += 1 } }
/// # }
/// # #[action(Till, emit = TillEvent::Sold)]
/// # pub struct Sell { pub total: f64 }
/// # #[state(name = "Refunds", actions(Refund))]
/// # #[derive(Debug, Clone, Default)]
/// # pub struct Refunds { pub count: u32 }
/// # #[emits(Refunds)]
/// # #[derive(Debug, Clone)]
/// # pub enum RefundEvent { Refunded { total: f64 } }
/// # impl Patch<RefundEvent> for Refunds {
/// #     fn patch(&mut self, e: &RefundEvent) { match e { RefundEvent::Refunded { .. } => self.count += 1 } }
/// # }
/// # #[action(Refunds, emit = RefundEvent::Refunded)]
/// # pub struct Refund { pub total: f64 }
/// use act_runtime::model::EventSet;
///
/// act_runtime::event_set! {
///     /// Everything the revenue model reads.
///     #[derive(Debug, Clone)]
///     pub enum Revenue {
///         Till(TillEvent),
///         Refund(RefundEvent),
///     }
/// }
///
/// assert_eq!(Revenue::names(), ["Sold", "Refunded"]);
/// let data = serde_json::value::RawValue::from_string(r#"{"total":2.5}"#.to_owned()).unwrap();
/// assert!(matches!(
///     Revenue::decode("Refunded", &data),
///     Ok(Some(Revenue::Refund(RefundEvent::Refunded { .. })))
/// ));
/// ```
#[macro_export]
macro_rules! event_set {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($events:ty) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant($events), )+
        }

        impl $crate::model::EventSet for $name {
            fn names() -> ::std::vec::Vec<&'static str> {
                let mut names = ::std::vec::Vec::new();
                $( names.extend(<$events as $crate::model::EventSet>::names()); )+
                names
            }

            fn decode(
                name: &str,
                data: &$crate::__private::RawValue,
            ) -> ::core::result::Result<
                ::core::option::Option<Self>,
                $crate::__private::serde_json::Error,
            > {
                $(
                    if let ::core::option::Option::Some(event) =
                        <$events as $crate::model::EventSet>::decode(name, data)?
                    {
                        return ::core::result::Result::Ok(::core::option::Option::Some(
                            Self::$variant(event),
                        ));
                    }
                )+
                ::core::result::Result::Ok(::core::option::Option::None)
            }
        }
    };
}
