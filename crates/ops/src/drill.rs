//! The scratch restore of every kind, for drills and `verify --restore`.

use lifeboat_container::ContainerDrill;
use lifeboat_core::drill::ScratchDrill;
use lifeboat_core::{Kind, Snapshot};
use lifeboat_dir::DirDrill;
use lifeboat_postgres::PostgresDrill;
use lifeboat_sqlite::SqliteDrill;

/// Every backend that can be drilled; PostgreSQL when a server for scratch databases is
/// given. A new backend adds itself here and nowhere else.
pub fn drill_backends(postgres_server: Option<&str>) -> Vec<Box<dyn ScratchDrill>> {
    let mut backends: Vec<Box<dyn ScratchDrill>> =
        vec![Box::new(SqliteDrill), Box::new(DirDrill), Box::new(ContainerDrill::default())];
    if let Some(server) = postgres_server {
        backends.push(Box::new(PostgresDrill::new(server)));
    }
    backends
}

/// The drill backend for a snapshot's kind.
///
/// # Errors
/// A PostgreSQL snapshot without a server to restore it into; a kind nothing can drill.
pub fn backend_for<'a>(
    backends: &'a [Box<dyn ScratchDrill>],
    snap: &dyn Snapshot,
) -> lifeboat_core::Result<&'a dyn ScratchDrill> {
    let kind = snap.manifest().kind;
    if let Some(backend) = backends.iter().find(|b| b.kind() == kind) {
        return Ok(backend.as_ref());
    }
    if kind == Kind::Postgres {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!(
                "{} is a PostgreSQL snapshot and no server to restore it into was given",
                snap.manifest().name
            ),
            hint: "pass --postgres-server URL (or LIFEBOAT_DRILL_POSTGRES): scratch databases are created and dropped there".into(),
        });
    }
    Err(lifeboat_core::Error::Unsupported {
        operation: "restoring into a scratch target".into(),
        kind,
    })
}
