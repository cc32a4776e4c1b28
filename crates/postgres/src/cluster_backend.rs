//! The [`Backend`] of physical base backups: `lifeboat backup postgres-cluster URL`, restores
//! to `pgdata:DIR` with point-in-time recovery from the WAL archive.

use async_trait::async_trait;
use lifeboat_core::backend::{OptionSpec, Options, TargetCommand, TargetSpec};
use lifeboat_core::drill::ScratchDrill;
use lifeboat_core::{Backend, Backup, Error, Kind, RestoreOptions, RestorePlan, Result, Snapshot};

use crate::backend::is_postgres_url;
use crate::cluster::{CLUSTER_KIND, ClusterBackup, ReadVia};
use crate::cluster_drill::ClusterDrill;
use crate::pgdata::{PgdataRestorePlan, RecoveryTarget};

/// Whole PostgreSQL clusters, as physical base backups plus the WAL archive.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresClusterBackend;

const TARGET_TIME: &str = "target-time";
const TARGET_LSN: &str = "target-lsn";
const TARGET_XID: &str = "target-xid";
const TARGET_NAME: &str = "target-name";
const IMMEDIATE: &str = "immediate";
const START: &str = "start";
const PORT: &str = "port";
const CLUSTER_DATABASE: &str = "cluster-database";
const TARGET_TIMELINE: &str = OptionSpec::TARGET_TIMELINE;
const VIA: &str = "via";

#[async_trait]
impl Backend for PostgresClusterBackend {
    fn kind(&self) -> Kind {
        CLUSTER_KIND
    }

    fn about(&self) -> &'static str {
        "whole PostgreSQL clusters (physical base backups; with the WAL archive, restores to any moment)"
    }

    fn commands(&self) -> Vec<TargetCommand> {
        vec![TargetCommand {
            name: "postgres-cluster",
            about: "A whole PostgreSQL cluster: a physical base backup, read from the data \
                    directory on the database host or over the replication protocol (the \
                    server's pg_basebackup), named HOST-PORT by default, the name its WAL is \
                    archived under (`wal-push --name`).",
            target: Some("URL"),
            target_help: "postgres://user:password@host:port/ of a superuser, or a user with the \
                          REPLICATION attribute (PG* variables fill the gaps).",
            options: vec![OptionSpec::value(
                VIA,
                "HOW",
                "How the files are read: `files` from the data directory (on the database \
                 host, as root or the server's owner; no walsender, less CPU), `replication` \
                 with the server's pg_basebackup, or `auto` (the default): files when this \
                 process can read them, else replication.",
            )],
        }]
    }

    fn check(&self, spec: &TargetSpec) -> Result<()> {
        if is_postgres_url(&spec.target) {
            Ok(())
        } else {
            Err(Error::InvalidInput {
                what: format!("{:?} is not a postgres:// URL", spec.target),
                hint: "give postgres://user@host:port/".into(),
            })
        }
    }

    fn backup(&self, spec: &TargetSpec) -> Result<Box<dyn Backup>> {
        self.check(spec)?;
        let via = ReadVia::parse(spec.options.value(VIA).unwrap_or("auto"))?;
        Ok(Box::new(ClusterBackup::new(spec.target.clone(), via)))
    }

    fn claims(&self, to: &str) -> bool {
        to.starts_with("pgdata:")
    }

    fn restore_options(&self) -> Vec<OptionSpec> {
        vec![
            OptionSpec::value(
                TARGET_TIME,
                "TIME",
                "PostgreSQL cluster: recover to this time (RFC 3339, or any form \
                 recovery_target_time takes); default: the newest archived WAL.",
            ),
            OptionSpec::value(TARGET_LSN, "LSN", "PostgreSQL cluster: recover to this LSN."),
            OptionSpec::value(
                TARGET_XID,
                "XID",
                "PostgreSQL cluster: recover to this transaction.",
            ),
            OptionSpec::value(
                TARGET_NAME,
                "NAME",
                "PostgreSQL cluster: recover to this restore point (pg_create_restore_point).",
            ),
            OptionSpec::flag(
                IMMEDIATE,
                "PostgreSQL cluster: recover only to the end of the base backup.",
            ),
            OptionSpec::value(
                TARGET_TIMELINE,
                "TIMELINE",
                "PostgreSQL cluster: the timeline to recover along (a number, `latest` or \
                 `current`); default: the newest one in the archive that branched after the \
                 base backup.",
            ),
            OptionSpec::flag(
                START,
                "PostgreSQL cluster: start the server once written (with --port) and wait \
                 until recovery has ended and it accepts writes.",
            ),
            OptionSpec::value(PORT, "PORT", "PostgreSQL cluster: the port --start uses."),
        ]
    }

    async fn plan_restore(
        &self,
        snapshot: &dyn Snapshot,
        to: &str,
        options: &RestoreOptions,
        selection: &Options,
    ) -> Result<Box<dyn RestorePlan>> {
        let dir = to.strip_prefix("pgdata:").unwrap_or(to);
        if dir.is_empty() {
            return Err(Error::InvalidInput {
                what: "pgdata: needs a folder".into(),
                hint: "give --to pgdata:/var/lib/postgresql/15/restored".into(),
            });
        }
        let target = recovery_target(selection)?;
        let plan = PgdataRestorePlan::prepare(
            snapshot,
            std::path::Path::new(dir),
            target,
            options.archive_fetch.clone(),
            options.force,
        )?;
        let plan = match selection.value(TARGET_TIMELINE) {
            Some(timeline) => plan.along_timeline(timeline)?,
            None => plan,
        };
        let start = selection.flag(START);
        let port = selection.parse::<u16>(PORT)?;
        Ok(Box::new(match (start, port) {
            (true, Some(port)) => plan.start_on(port),
            (true, None) => {
                return Err(Error::InvalidInput {
                    what: "--start needs the port to start the server on".into(),
                    hint: "add --port PORT (a free one: the restored cluster runs beside others)"
                        .into(),
                });
            }
            (false, _) => plan,
        }))
    }

    fn drill_options(&self) -> Vec<OptionSpec> {
        vec![
            OptionSpec::value(
                CLUSTER_DATABASE,
                "DB",
                "PostgreSQL cluster: the database drills of base backups check expectations in \
                 (default: postgres).",
            ),
            OptionSpec::value(
                OptionSpec::ARCHIVE_FETCH,
                "COMMAND",
                "PostgreSQL cluster: the restore_command prefix drills recover with (default: \
                 this lifeboat with this repository and key).",
            ),
        ]
    }

    fn drill(&self, options: &Options) -> Result<Box<dyn ScratchDrill>> {
        Ok(Box::new(ClusterDrill::new(
            options.value(OptionSpec::ARCHIVE_FETCH).map(str::to_string),
            options.value(CLUSTER_DATABASE).unwrap_or("postgres"),
        )))
    }
}

/// The one recovery target the options give (none: the newest archived WAL).
fn recovery_target(selection: &Options) -> Result<RecoveryTarget> {
    let mut given: Vec<RecoveryTarget> = Vec::new();
    if selection.flag(IMMEDIATE) {
        given.push(RecoveryTarget::Immediate);
    }
    let valued = [
        (TARGET_TIME, RecoveryTarget::Time as fn(String) -> RecoveryTarget),
        (TARGET_LSN, RecoveryTarget::Lsn),
        (TARGET_XID, RecoveryTarget::Xid),
        (TARGET_NAME, RecoveryTarget::Name),
    ];
    for (name, make) in valued {
        if let Some(value) = selection.value(name) {
            given.push(make(value.to_string()));
        }
    }
    match given.len() {
        0 => Ok(RecoveryTarget::Latest),
        1 => Ok(given.remove(0)),
        _ => Err(Error::InvalidInput {
            what: "more than one recovery target was given".into(),
            hint:
                "give one of --target-time, --target-lsn, --target-xid, --target-name, --immediate"
                    .into(),
        }),
    }
}
