//! The schema lock over real domains: one account domain as first deployed (`v1`), then
//! changed compatibly (`compatible`: a new version, a defaulted field, a new event) and
//! incompatibly (`breaking`: one kind of breaking change per event). Plus the lock of the
//! shared test domains, committed as `tests/schema.lock.json`.

use std::path::PathBuf;

use act_runtime::app::{Change, SchemaLock, SchemaLockError, Verified};
use act_runtime::prelude::*;

/// The account as first deployed.
mod v1 {
    use act_runtime::prelude::*;

    #[state(name = "Account")]
    #[derive(Debug, Clone, Default)]
    pub struct Account {
        pub balance: u64,
    }

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    pub struct Branch {
        pub code: String,
        pub floor: u8,
    }

    #[emits(Account)]
    #[derive(Debug, Clone)]
    pub enum AccountEvent {
        Opened {
            owner: String,
            #[serde(default)]
            nickname: String,
        },
        Deposited {
            amount: u64,
            memo: Option<String>,
        },
        Moved {
            branch: Branch,
        },
        Withdrawn {
            amount: u64,
        },
        Frozen {
            reason: String,
        },
        Closed,
    }

    impl Patch<AccountEvent> for Account {
        fn patch(&mut self, event: &AccountEvent) {
            match event {
                AccountEvent::Deposited { amount, .. } => self.balance += amount,
                AccountEvent::Withdrawn { amount } => self.balance -= amount,
                _ => {}
            }
        }
    }
}

/// Compatible changes only: `Deposited_v2` supersedes `Deposited` (kept, so deprecated),
/// `Opened` gains a defaulted field, `Moved`'s branch an optional one, `Frozen` documents
/// its field, and `Reopened` is new.
mod compatible {
    use act_runtime::prelude::*;

    #[state(name = "Account")]
    #[derive(Debug, Clone, Default)]
    pub struct Account {
        pub balance: u64,
    }

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    pub struct Branch {
        pub code: String,
        pub floor: u8,
        pub desk: Option<u32>,
    }

    #[emits(Account)]
    #[derive(Debug, Clone)]
    pub enum AccountEvent {
        Opened {
            owner: String,
            #[serde(default)]
            nickname: String,
            #[serde(default)]
            channel: String,
        },
        Deposited {
            amount: u64,
            memo: Option<String>,
        },
        Deposited_v2 {
            amount: i64,
            memo: String,
        },
        Moved {
            branch: Branch,
        },
        Withdrawn {
            amount: u64,
        },
        Frozen {
            /// Why compliance froze the account.
            reason: String,
        },
        Closed,
        Reopened,
    }

    impl Patch<AccountEvent> for Account {
        fn patch(&mut self, event: &AccountEvent) {
            match event {
                AccountEvent::Deposited { amount, .. } => self.balance += amount,
                AccountEvent::Deposited_v2 { amount, .. } => {
                    self.balance = self.balance.saturating_add_signed(*amount)
                }
                AccountEvent::Withdrawn { amount } => self.balance -= amount,
                _ => {}
            }
        }
    }
}

/// One breaking change per event: `Opened`'s defaulted field made required, `Deposited`'s
/// memo removed and a required field added, `Moved`'s nested field retyped, `Withdrawn`'s
/// amount retyped, `Frozen` removed, `Closed` moved to another state.
mod breaking {
    use act_runtime::prelude::*;

    #[state(name = "Account")]
    #[derive(Debug, Clone, Default)]
    pub struct Account {
        pub balance: u64,
    }

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    pub struct Branch {
        pub code: String,
        pub floor: String,
    }

    #[emits(Account)]
    #[derive(Debug, Clone)]
    pub enum AccountEvent {
        Opened { owner: String, nickname: String },
        Deposited { amount: u64, reference: String },
        Moved { branch: Branch },
        Withdrawn { amount: String },
    }

    impl Patch<AccountEvent> for Account {
        fn patch(&mut self, event: &AccountEvent) {
            if let AccountEvent::Deposited { amount, .. } = event {
                self.balance += amount
            }
        }
    }

    #[state(name = "Archive")]
    #[derive(Debug, Clone, Default)]
    pub struct Archive {
        pub closed: bool,
    }

    #[emits(Archive)]
    #[derive(Debug, Clone)]
    pub enum ArchiveEvent {
        Closed,
    }

    impl Patch<ArchiveEvent> for Archive {
        fn patch(&mut self, _: &ArchiveEvent) {
            self.closed = true;
        }
    }
}

fn lock_v1() -> SchemaLock {
    act()
        .with_state::<v1::Account>()
        .build()
        .unwrap()
        .schema_lock()
}

/// A fresh directory for one test's lock file.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("act-schema-lock-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_lock_lists_every_event_with_its_version_and_deprecation() {
    let app = act().with_state::<compatible::Account>().build().unwrap();
    let lock = app.schema_lock();
    let rows: Vec<_> = lock
        .events()
        .iter()
        .map(|e| (e.state.as_str(), e.name.as_str(), e.version, e.deprecated))
        .collect();
    assert_eq!(
        rows,
        [
            ("Account", "Closed", 1, false),
            ("Account", "Deposited", 1, true),
            ("Account", "Deposited_v2", 2, false),
            ("Account", "Frozen", 1, false),
            ("Account", "Moved", 1, false),
            ("Account", "Opened", 1, false),
            ("Account", "Reopened", 1, false),
            ("Account", "Withdrawn", 1, false),
        ]
    );
    // the catalog marks the superseded version too, and gives each event's version
    let catalog = app.catalog();
    let events: Vec<_> = catalog.states[0]
        .events
        .iter()
        .filter(|e| e.name.starts_with("Deposited"))
        .map(|e| (e.name, e.version, e.deprecated))
        .collect();
    assert_eq!(events, [("Deposited", 1, true), ("Deposited_v2", 2, false)]);
    let json = serde_json::to_value(&catalog).unwrap();
    let v2 = &json["states"][0]["events"][2];
    assert_eq!(
        (&v2["name"], &v2["version"]),
        (&"Deposited_v2".into(), &2.into())
    );
    // `Moved` refers to `Branch` only: the other events carry no `$defs`
    let moved = &lock.events()[4].schema;
    assert!(moved["$defs"]["Branch"].is_object(), "{moved}");
    assert!(lock.events()[0].schema.get("$defs").is_none());
}

#[test]
fn compatible_changes_pass_the_lock() {
    let new = act()
        .with_state::<compatible::Account>()
        .build()
        .unwrap()
        .schema_lock();
    assert_eq!(lock_v1().check(&new), Ok(()));
}

#[test]
fn each_kind_of_breaking_change_is_caught() {
    let new = act()
        .with_state::<breaking::Account>()
        .with_state::<breaking::Archive>()
        .build()
        .unwrap()
        .schema_lock();
    let breaks = lock_v1().check(&new).unwrap_err();
    let found: Vec<_> = breaks
        .iter()
        .map(|b| (b.event.as_str(), b.path.as_str(), b.change.clone()))
        .collect();
    let retyped = |from: &str, to: &str| Change::TypeChanged {
        from: from.into(),
        to: to.into(),
    };
    assert_eq!(
        found,
        [
            (
                "Closed",
                "",
                Change::StateChanged {
                    from: "Account".into(),
                    to: "Archive".into()
                }
            ),
            ("Deposited", "/memo", Change::FieldRemoved),
            ("Deposited", "/reference", Change::RequiredFieldAdded),
            ("Frozen", "", Change::EventRemoved),
            (
                "Moved",
                "/branch/floor",
                retyped("integer (uint8)", "string")
            ),
            ("Opened", "/nickname", Change::FieldMadeRequired),
            (
                "Withdrawn",
                "/amount",
                retyped("integer (uint64)", "string")
            ),
        ]
    );
    assert_eq!(
        breaks[1].to_string(),
        "`Deposited` at /memo: field removed; add `Deposited_v2` instead"
    );
}

#[test]
fn dropping_the_old_version_for_a_new_one_is_breaking() {
    // `Deposited_v2` without `Deposited`: streams that hold `Deposited` no longer load
    mod replaced {
        use act_runtime::prelude::*;

        #[state(name = "Account")]
        #[derive(Debug, Clone, Default)]
        pub struct Account {
            pub balance: u64,
        }

        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        pub struct Branch {
            pub code: String,
            pub floor: u8,
        }

        #[emits(Account)]
        #[derive(Debug, Clone)]
        pub enum AccountEvent {
            Opened {
                owner: String,
                #[serde(default)]
                nickname: String,
            },
            Deposited_v2 {
                amount: u64,
                memo: Option<String>,
            },
            Moved {
                branch: Branch,
            },
            Withdrawn {
                amount: u64,
            },
            Frozen {
                reason: String,
            },
            Closed,
        }

        impl Patch<AccountEvent> for Account {
            fn patch(&mut self, _: &AccountEvent) {}
        }
    }
    let new = act()
        .with_state::<replaced::Account>()
        .build()
        .unwrap()
        .schema_lock();
    let breaks = lock_v1().check(&new).unwrap_err();
    assert_eq!(breaks.len(), 1, "{breaks:?}");
    assert_eq!(breaks[0].change, Change::EventRemoved);
    assert_eq!(
        breaks[0].to_string(),
        "`Deposited`: event removed; keep it in `Account`'s events (a newer version makes it \
         deprecated) so old streams still load"
    );
}

#[test]
fn verify_writes_then_checks_the_file() {
    let dir = scratch("verify");
    let path = dir.join("schema.lock.json");
    // `verify_with(.., false)`: what `verify` does without `ACT_UPDATE_SCHEMA_LOCK=1`
    let verify = |app: &Act| SchemaLock::verify_with(&app.schema_lock(), &path, false);
    let v1 = act().with_state::<v1::Account>().build().unwrap();
    assert_eq!(verify(&v1).unwrap(), Verified::Written);
    assert_eq!(verify(&v1).unwrap(), Verified::Unchanged);

    let compatible = act().with_state::<compatible::Account>().build().unwrap();
    match verify(&compatible) {
        // new (`Deposited_v2`, `Reopened`), deprecated now (`Deposited`), a description
        // (`Frozen`), new optional fields (`Moved`, `Opened`)
        Err(SchemaLockError::Outdated { events, .. }) => assert_eq!(
            events,
            [
                "Deposited",
                "Deposited_v2",
                "Frozen",
                "Moved",
                "Opened",
                "Reopened"
            ]
        ),
        other => panic!("expected an outdated lock, got {other:?}"),
    }

    let breaking = act()
        .with_state::<breaking::Account>()
        .with_state::<breaking::Archive>()
        .build()
        .unwrap();
    let err = verify(&breaking).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "schema lock `{}`: 7 breaking changes:\n  - `Closed`: moved",
            path.display()
        )),
        "{text}"
    );
    assert_eq!(text.lines().count(), 8, "one line per change: {text}");
    assert_eq!(
        SchemaLock::read(&path).unwrap(),
        lock_v1(),
        "the file is kept"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_test_domains_match_their_committed_lock() {
    use act_tests::{cart, counter, ledger};
    let app = act()
        .with_state::<cart::Cart>()
        .with_state::<counter::Counter>()
        .with_state::<ledger::Ledger>()
        .build()
        .unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.lock.json");
    if let Err(e) = SchemaLock::verify(&app, path) {
        panic!("{e}");
    }
}
