//! The suite on PostgreSQL, when `PARLEY_TEST_DATABASE_URL` points at a
//! server; each test gets its own database, dropped afterwards.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::storage::tests::TestDb;

/// The server to create test databases on, if any.
fn admin_url() -> Option<String> {
    std::env::var("PARLEY_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Drops its database when the test is over.
#[derive(Debug)]
struct DropDatabase {
    admin_url: String,
    name: String,
}

impl crate::storage::tests::Cleanup for DropDatabase {
    fn cleanup(self: Box<Self>) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut admin = PgConnection::connect(&self.admin_url)
                .await
                .expect("connect to the test server");
            // `with (force)` ends connections a failed test left open.
            sqlx::raw_sql(AssertSqlSafe(format!(
                "drop database if exists \"{}\" with (force)",
                self.name
            )))
            .execute(&mut admin)
            .await
            .expect("drop the test database");
        })
    }
}

/// A fresh database `parley_t_<uuid>`, or `None` (test skipped) when no
/// server is configured.
async fn fresh_db() -> Option<TestDb> {
    let Some(admin_url) = admin_url() else {
        eprintln!("PARLEY_TEST_DATABASE_URL not set: skipping the PostgreSQL test");
        return None;
    };
    let name = format!("parley_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("connect to PARLEY_TEST_DATABASE_URL");
    // The name is generated above, never user input.
    sqlx::raw_sql(AssertSqlSafe(format!("create database \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    admin.close().await.expect("close the admin connection");
    let url = with_database(&admin_url, &name);
    let store = crate::storage::connect(&url, 4)
        .await
        .expect("connect to the test database");
    Some(TestDb::new(
        url,
        store,
        Box::new(DropDatabase { admin_url, name }),
    ))
}

crate::storage::tests::store_test_suite!(fresh_db);

#[test]
fn the_database_name_is_replaced_in_the_url() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}
