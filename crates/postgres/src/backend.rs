//! The PostgreSQL [`Backend`]: `lifeboat backup postgres URL`, restores to a database URL,
//! drills into scratch databases on a server.

use async_trait::async_trait;
use lifeboat_core::backend::{OptionSpec, Options, TargetCommand, TargetSpec};
use lifeboat_core::drill::ScratchDrill;
use lifeboat_core::{
    Backend, Backup, Error, ExportReport, ExportRequest, Kind, Progress, RestoreContext,
    RestoreOptions, RestorePlan, Result, RowSelection, RowsReport, Snapshot,
};

use crate::{MissingRoles, PostgresBackup, PostgresDrill, PostgresRestorePlan};

/// PostgreSQL databases, as one consistent pg_dump with exact row counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresBackend;

const CONNECTIONS: &str = "connections";
const TABLE: &str = OptionSpec::TABLE;
const SCHEMA_ONLY: &str = "schema-only";
const SKIP_MISSING_ROLES: &str = "skip-missing-roles";
/// The drill option naming the server scratch databases are made on.
pub const DRILL_SERVER: &str = "postgres-server";

#[async_trait]
impl Backend for PostgresBackend {
    fn kind(&self) -> Kind {
        Kind::POSTGRES
    }

    fn about(&self) -> &'static str {
        "PostgreSQL databases (pg_dump in one snapshot with exact row counts)"
    }

    fn commands(&self) -> Vec<TargetCommand> {
        vec![TargetCommand {
            name: "postgres",
            about: "A PostgreSQL database (pg_dump in one snapshot with exact row counts).",
            target: Some("URL"),
            target_help: "postgres://user:password@host:port/database (PG* variables fill the gaps).",
            options: vec![OptionSpec::value(
                CONNECTIONS,
                "N",
                "Connections reading table data at once, 1 to 64 (default: this machine's \
                 cores, 2 to 8). More help when the database server has more cores than this \
                 machine.",
            )],
        }]
    }

    fn check(&self, spec: &TargetSpec) -> Result<()> {
        if !self.claims(&spec.target) {
            return Err(Error::InvalidInput {
                what: format!("{:?} is not a postgres:// URL", spec.target),
                hint: "give postgres://user@host:port/database".into(),
            });
        }
        connections(&spec.options).map(|_| ())
    }

    fn backup(&self, spec: &TargetSpec) -> Result<Box<dyn Backup>> {
        self.check(spec)?;
        let backup = PostgresBackup::new(spec.target.clone());
        Ok(Box::new(match connections(&spec.options)? {
            Some(n) => backup.with_jobs(n),
            None => backup,
        }))
    }

    fn claims(&self, to: &str) -> bool {
        is_postgres_url(to)
    }

    fn restore_options(&self) -> Vec<OptionSpec> {
        vec![
            OptionSpec::value(
                TABLE,
                "NAME",
                "PostgreSQL: restore only this table (NAME or SCHEMA.NAME).",
            ),
            OptionSpec::flag(SCHEMA_ONLY, "PostgreSQL: restore the schema only, no rows."),
            OptionSpec::flag(
                SKIP_MISSING_ROLES,
                "PostgreSQL: create no roles the target cluster lacks (by default they are \
                 created without login); objects are then owned by the restoring user and \
                 grants left out.",
            ),
        ]
    }

    async fn plan_restore(
        &self,
        snapshot: &dyn Snapshot,
        to: &str,
        options: &RestoreOptions,
        selection: &Options,
    ) -> Result<Box<dyn RestorePlan>> {
        if !self.claims(to) {
            return Err(Error::InvalidInput {
                what: format!(
                    "snapshot {} is a postgres snapshot; {to} is not a postgres:// URL",
                    snapshot.id().short()
                ),
                hint: "restore it to postgres://user@host:port/database".into(),
            });
        }
        let roles = match selection.flag(SKIP_MISSING_ROLES) {
            true => MissingRoles::Skip,
            false => MissingRoles::Create,
        };
        let plan = PostgresRestorePlan::prepare(snapshot, to, options).await?;
        Ok(Box::new(
            plan.with_selection(
                selection.value(TABLE).map(str::to_string),
                selection.flag(SCHEMA_ONLY),
            )
            .with_missing_roles(roles),
        ))
    }

    async fn restore_rows(
        &self,
        ctx: &RestoreContext<'_>,
        to: &str,
        selection: &RowSelection,
        dry_run: bool,
    ) -> Result<RowsReport> {
        if !self.claims(to) {
            return Err(Error::InvalidInput {
                what: format!("{to} is not a postgres:// URL"),
                hint: "give the live database as postgres://user@host:port/database".into(),
            });
        }
        crate::restore_rows(ctx, to, selection, dry_run).await
    }

    fn drill_options(&self) -> Vec<OptionSpec> {
        vec![
            OptionSpec::value(
                DRILL_SERVER,
                "URL",
                "PostgreSQL server to restore PostgreSQL snapshots into (scratch databases are \
                 created and dropped there), e.g. postgres://drill:pw@staging-db:5432/postgres.",
            )
            .env("LIFEBOAT_DRILL_POSTGRES"),
        ]
    }

    async fn export(
        &self,
        snapshot: &dyn Snapshot,
        request: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<ExportReport> {
        crate::export(snapshot, request, progress).await
    }

    fn drill(&self, options: &Options) -> Result<Box<dyn ScratchDrill>> {
        match options.value(DRILL_SERVER) {
            Some(server) => Ok(Box::new(PostgresDrill::new(server))),
            None => Err(Error::MissingOption {
                kind: Kind::POSTGRES,
                option: DRILL_SERVER.into(),
                why: "PostgreSQL snapshots are restored into scratch databases created and \
                      dropped on a server"
                    .into(),
            }),
        }
    }
}

/// Whether `s` is a `postgres://` or `postgresql://` URL.
pub(crate) fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

fn connections(options: &Options) -> Result<Option<usize>> {
    match options.parse::<usize>(CONNECTIONS)? {
        Some(n) if !(1..=64).contains(&n) => Err(Error::InvalidInput {
            what: format!("{CONNECTIONS} must be 1 to 64, not {n}"),
            hint: format!("give {CONNECTIONS} a value from 1 to 64"),
        }),
        n => Ok(n),
    }
}
