//! The one database handle. SQLite (embedded default) and PostgreSQL share one set of
//! portable queries through `sqlx::Any`; each table family has its own module, and the
//! job claim is the only query that differs per backend.

pub mod agents;
pub mod audit;
pub mod external_auth;
pub mod favorites;
pub mod jobs;
pub mod prebuilds;
pub mod retention;
pub mod templates;
pub mod tokens;
pub mod users;
pub mod workspaces;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

/// Database URLs can carry passwords: never print one.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({:?}, ***)", self.backend)
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Database {
    /// Opens (creating if needed) the embedded SQLite database in `data_dir`.
    pub async fn open_sqlite(data_dir: &Path) -> anyhow::Result<Database> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
        let path = data_dir.join("hangar.db");
        private_file(&path)?;
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connects to `sqlite://…` or `postgres://…` and runs the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Database> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL: use sqlite://PATH or postgres://…");
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; busy_timeout makes a second writer
            // wait instead of failing at once.
            options = options.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            });
        } else {
            options = options.max_connections(16);
        }
        let pool = options
            .connect(url)
            .await
            .context("connecting to the database")?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .context("running database migrations")?;
        Ok(Database { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Connections the pool holds, and how many of them are idle.
    pub fn pool_use(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// True when a query failed on a UNIQUE constraint: the caller turns it into a conflict.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .map(|e| e.is_unique_violation())
        .unwrap_or(false)
}

pub(crate) fn flag(v: i64) -> bool {
    v != 0
}

/// A stored word (a status, a kind, a role) as its enum: a row holding anything else is
/// an error naming the column, never a silent default.
pub(crate) fn parse_text<T>(column: &str, v: &str) -> Result<T, sqlx::Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    v.parse()
        .map_err(|e: T::Err| sqlx::Error::Decode(format!("{column}: {e}").into()))
}

/// Stored JSON as its type. A corrupt row fails the request or job reading it, naming
/// the row, instead of reading as empty (a build run without its parameters).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: impl std::fmt::Display,
    v: &str,
) -> Result<T, sqlx::Error> {
    serde_json::from_str(v)
        .map_err(|e| sqlx::Error::Decode(format!("{what} is not valid stored JSON: {e}").into()))
}

/// JSON to store; serializing these plain types cannot fail.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(v).map_err(|e| sqlx::Error::Encode(e.into()))
}

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` values: one INSERT for many rows.
pub fn placeholder_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates `path` mode 0600 if missing, and makes it (and SQLite's `-wal` and `-shm`
/// beside it) 0600 if not: the database holds every secret the server has, and SQLite
/// creates its side files with the main file's mode.
fn private_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("making {} private", file.display()))
            }
            _ => {}
        }
    }
    Ok(())
}
