//! Opening the store the command line names.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::CliError;
use super::args::Cli;
use crate::adapters::SqliteStore;
use crate::adapters::postgres::PostgresConfig;
use crate::error::StoreError;
use crate::ports::Store;

/// Opens and seeds the store of `--sqlite` or `--pg` (`--schema`, `--table`).
pub(crate) async fn open(cli: &Cli) -> Result<Arc<dyn Store>, CliError> {
    match (&cli.sqlite, &cli.pg) {
        (Some(path), _) => sqlite(path).await,
        (None, Some(url)) => postgres(url, cli.schema.as_deref(), cli.table.as_deref()).await,
        (None, None) => Err(CliError::NoStore),
    }
}

async fn sqlite(path: &Path) -> Result<Arc<dyn Store>, CliError> {
    // An operator reads an app's database: a mistyped path must not make an empty one.
    let exists = tokio::fs::try_exists(path).await.unwrap_or(false);
    if !exists {
        return Err(CliError::NoDatabase {
            path: path.to_path_buf(),
        });
    }
    let fail = |source| CliError::Connect {
        store: format!("`{}`", path.display()),
        source,
    };
    // `open` seeds (creates the tables of a file that has none, upgrades older ones).
    let store = SqliteStore::open(path).await.map_err(fail)?;
    Ok(Arc::new(store))
}

async fn postgres(
    url: &str,
    schema: Option<&str>,
    table: Option<&str>,
) -> Result<Arc<dyn Store>, CliError> {
    let mut shown = redact(url);
    if let Some(schema) = schema {
        shown.push_str(&format!(" (schema `{schema}`)"));
    }
    let fail = |source: StoreError| CliError::Connect {
        store: shown.clone(),
        source,
    };
    let mut config = PostgresConfig::from_url(url)
        .map_err(fail)?
        // One command at a time: a small pool, and a short wait for a server that
        // is not there.
        .pool_size(2)
        .acquire_timeout(Duration::from_secs(5));
    if let Some(schema) = schema {
        config = config.schema(schema);
    }
    if let Some(table) = table {
        config = config.table(table);
    }
    let store = config.connect().await.map_err(fail)?;
    if let Err(e) = store.seed().await {
        let _ = store.dispose().await;
        return Err(fail(e));
    }
    Ok(Arc::new(store))
}

/// `url` with the password of its user info replaced by `***` (a password with an
/// unencoded `/` is hidden too: the user info ends at the last `@` before the query).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_owned();
    };
    let (user_info, host) = (&rest[..at], &rest[at..]);
    match user_info.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://ops:s3cr/t@db:5432/bank?sslmode=require"),
            "postgres://ops:***@db:5432/bank?sslmode=require"
        );
        assert_eq!(redact("postgres://ops@db/bank"), "postgres://ops@db/bank");
        assert_eq!(redact("postgres://db/bank"), "postgres://db/bank");
        assert_eq!(redact("not a url"), "not a url");
    }
}
