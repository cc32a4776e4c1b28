//! What a database is, beyond what it holds: owner, encoding and locale, privileges, settings,
//! connection limit, comment, and the roles its objects and grants name. `pg_dump` leaves
//! these out unless it recreates the database under its own name (`--create`), which a
//! restore beside the target cannot use; so the backup records them and the restore applies
//! them to whatever name it creates.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::PgError;

/// Database-level facts recorded with a snapshot (absent in snapshots of older lifeboats).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseFacts {
    /// The owning role.
    pub owner: String,
    /// The encoding (`UTF8`, `LATIN1`, ...).
    pub encoding: String,
    /// `LC_COLLATE`.
    pub collate: String,
    /// `LC_CTYPE`.
    pub ctype: String,
    /// The locale provider: `libc`, `icu` or `builtin`.
    #[serde(default)]
    pub locale_provider: String,
    /// The ICU or builtin locale, when that provider is used.
    #[serde(default)]
    pub provider_locale: Option<String>,
    /// The database's privileges; `None` when they are PostgreSQL's defaults.
    pub acl: Option<Vec<Grant>>,
    /// `ALTER DATABASE ... SET` and `ALTER ROLE ... IN DATABASE ... SET` settings.
    pub settings: Vec<Setting>,
    /// The connection limit (-1: none).
    pub connection_limit: i32,
    /// `COMMENT ON DATABASE`.
    pub comment: Option<String>,
    /// Every role the database's objects, grants and settings name.
    pub roles: Vec<String>,
}

/// One privilege on the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The role it is granted to; `None` for `PUBLIC`.
    pub grantee: Option<String>,
    /// `CONNECT`, `CREATE` or `TEMPORARY`.
    pub privilege: String,
    /// `WITH GRANT OPTION`.
    pub grantable: bool,
}

/// One per-database setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// For `ALTER ROLE role IN DATABASE`; `None` for every role.
    pub role: Option<String>,
    /// The parameter.
    pub name: String,
    /// Its value as the catalog stores it.
    pub value: String,
}

/// `name` as an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1).
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn query_err(target: &str) -> impl Fn(tokio_postgres::Error) -> PgError + '_ {
    move |e| PgError::Query { target: target.into(), reason: crate::connect::db_message(&e) }
}

impl DatabaseFacts {
    /// Reads the facts of the client's current database, in its current transaction.
    pub(crate) async fn read(
        client: &Client,
        target: &str,
        server_major: u32,
    ) -> Result<DatabaseFacts, PgError> {
        let q = query_err(target);
        let provider = match server_major {
            0..=14 => "'libc', NULL::text",
            15 | 16 => "d.datlocprovider::text, d.daticulocale::text",
            _ => "d.datlocprovider::text, d.datlocale::text",
        };
        let row = client
            .query_one(
                &format!(
                    "SELECT pg_get_userbyid(d.datdba)::text, pg_encoding_to_char(d.encoding)::text, \
                     d.datcollate::text, d.datctype::text, {provider}, d.datconnlimit, \
                     shobj_description(d.oid, 'pg_database') \
                     FROM pg_database d WHERE d.datname = current_database()"
                ),
                &[],
            )
            .await
            .map_err(&q)?;
        let locale_provider = match row.get::<_, String>(4).as_str() {
            "i" => "icu",
            "b" => "builtin",
            _ => "libc",
        }
        .to_string();
        let mut facts = DatabaseFacts {
            owner: row.get(0),
            encoding: row.get(1),
            collate: row.get(2),
            ctype: row.get(3),
            provider_locale: if locale_provider == "libc" { None } else { row.get(5) },
            locale_provider,
            connection_limit: row.get(6),
            comment: row.get(7),
            ..Default::default()
        };
        let acl = client
            .query(
                "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)::text END, \
                 a.privilege_type, a.is_grantable \
                 FROM pg_database d, aclexplode(d.datacl) a \
                 WHERE d.datname = current_database() ORDER BY 1 NULLS FIRST, 2",
                &[],
            )
            .await
            .map_err(&q)?;
        let has_acl: bool = client
            .query_one(
                "SELECT datacl IS NOT NULL FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(&q)?
            .get(0);
        if has_acl {
            facts.acl = Some(
                acl.iter()
                    .map(|r| Grant { grantee: r.get(0), privilege: r.get(1), grantable: r.get(2) })
                    .collect(),
            );
        }
        let settings = client
            .query(
                "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole)::text END, \
                 c.entry FROM pg_db_role_setting s, unnest(s.setconfig) WITH ORDINALITY AS c(entry, n) \
                 WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 ORDER BY 1 NULLS FIRST, c.n",
                &[],
            )
            .await
            .map_err(&q)?;
        for row in &settings {
            let entry: String = row.get(1);
            if let Some((name, value)) = entry.split_once('=') {
                facts.settings.push(Setting {
                    role: row.get(0),
                    name: name.to_string(),
                    value: value.to_string(),
                });
            }
        }
        // pg_shdepend has every owner and grantee of an object in this database, except the
        // bootstrap superuser (pinned, so never recorded): owners are asked for directly too.
        // Predefined roles (pg_database_owner, pg_read_all_data, ...) exist in every cluster.
        let roles = client
            .query(
                "WITH db AS (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 SELECT DISTINCT r.rolname::text FROM pg_roles r WHERE r.oid IN ( \
                   SELECT d.refobjid FROM pg_shdepend d, db \
                   WHERE d.refclassid = 'pg_authid'::regclass AND (d.dbid = db.oid \
                     OR (d.classid = 'pg_database'::regclass AND d.objid = db.oid)) \
                   UNION SELECT datdba FROM pg_database WHERE oid = (SELECT oid FROM db) \
                   UNION SELECT setrole FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM db) \
                   UNION SELECT nspowner FROM pg_namespace \
                     WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' \
                   UNION SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
                   UNION SELECT lomowner FROM pg_largeobject_metadata) \
                 AND r.rolname NOT LIKE 'pg\\_%' ORDER BY 1",
                &[],
            )
            .await
            .map_err(&q)?;
        facts.roles = roles.iter().map(|r| r.get(0)).collect();
        Ok(facts)
    }

    /// The options of `CREATE DATABASE` that only creation can set. `owner` is left out
    /// when it is `None` (the role is missing and its grants are skipped).
    pub(crate) fn create_options(&self, owner: Option<&str>) -> String {
        let mut sql = String::from(" TEMPLATE template0");
        if let Some(owner) = owner {
            sql.push_str(&format!(" OWNER {}", quote_ident(owner)));
        }
        sql.push_str(&format!(
            " ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            quote_literal(&self.encoding),
            quote_literal(&self.collate),
            quote_literal(&self.ctype)
        ));
        match (self.locale_provider.as_str(), &self.provider_locale) {
            ("icu", Some(locale)) => {
                sql.push_str(&format!(" LOCALE_PROVIDER icu ICU_LOCALE {}", quote_literal(locale)))
            }
            ("builtin", Some(locale)) => sql.push_str(&format!(
                " LOCALE_PROVIDER builtin BUILTIN_LOCALE {}",
                quote_literal(locale)
            )),
            _ => {}
        }
        sql
    }

    /// The statements that give database `db` these privileges, settings, limit and comment;
    /// roles in `skip` (missing, and not to be created) are left out. Run after the data is
    /// in: a setting such as `default_transaction_read_only` would stop the restore itself.
    pub(crate) fn apply_statements(&self, db: &str, skip: &[String]) -> Vec<String> {
        let db = quote_ident(db);
        let skipped = |role: &Option<String>| role.as_ref().is_some_and(|r| skip.contains(r));
        let mut sql = Vec::new();
        for s in self.settings.iter().filter(|s| !skipped(&s.role)) {
            let value = setting_value(&s.name, &s.value);
            sql.push(match &s.role {
                None => format!("ALTER DATABASE {db} SET {} TO {value}", quote_ident(&s.name)),
                Some(role) => format!(
                    "ALTER ROLE {} IN DATABASE {db} SET {} TO {value}",
                    quote_ident(role),
                    quote_ident(&s.name)
                ),
            });
        }
        if self.connection_limit != -1 {
            sql.push(format!("ALTER DATABASE {db} CONNECTION LIMIT {}", self.connection_limit));
        }
        if let Some(comment) = &self.comment {
            sql.push(format!("COMMENT ON DATABASE {db} IS {}", quote_literal(comment)));
        }
        if let Some(acl) = &self.acl {
            // From a clean slate: the defaults (PUBLIC's CONNECT and TEMPORARY, everything for
            // the owner) are what a recorded ACL replaces.
            sql.push(format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC"));
            if !skip.contains(&self.owner) {
                sql.push(format!("REVOKE ALL ON DATABASE {db} FROM {}", quote_ident(&self.owner)));
            }
            for g in acl.iter().filter(|g| !skipped(&g.grantee)) {
                sql.push(format!(
                    "GRANT {} ON DATABASE {db} TO {}{}",
                    g.privilege,
                    g.grantee.as_deref().map_or("PUBLIC".into(), quote_ident),
                    if g.grantable { " WITH GRANT OPTION" } else { "" }
                ));
            }
        }
        sql
    }
}

/// A stored setting as SQL. List parameters (`search_path` and the like) are stored as a
/// list of identifiers, quoted where needed: each becomes one literal, as pg_dump does.
fn setting_value(name: &str, value: &str) -> String {
    const LISTS: &[&str] = &[
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "shared_preload_libraries",
        "local_preload_libraries",
        "unix_socket_directories",
    ];
    if !LISTS.contains(&name.to_ascii_lowercase().as_str()) {
        return quote_literal(value);
    }
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            c if c.is_whitespace() && !quoted => {}
            c => current.push(c),
        }
    }
    items.push(current);
    items.iter().map(|i| quote_literal(i)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_settings_become_one_literal_per_item() {
        assert_eq!(setting_value("search_path", "\"$user\", public"), "'$user', 'public'");
        assert_eq!(setting_value("search_path", "\"a,\"\"b\", c"), "'a,\"b', 'c'");
        assert_eq!(setting_value("work_mem", "8MB"), "'8MB'");
        assert_eq!(setting_value("application_name", "it's"), "'it''s'");
    }
}
