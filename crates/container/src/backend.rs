//! The container [`Backend`]: `lifeboat backup container NAME`, `backup containers --label`,
//! restores to `container:NAME`.

use std::time::Duration;

use async_trait::async_trait;
use lifeboat_core::backend::{Leftover, Member, OptionSpec, Options, TargetCommand, TargetSpec};
use lifeboat_core::drill::ScratchDrill;
use lifeboat_core::{Backend, Backup, Error, Kind, RestoreOptions, RestorePlan, Result, Snapshot};

use crate::{ContainerBackup, ContainerDrill, ContainerRestorePlan, containers_with_label};

/// Docker containers: filesystem, configuration, volumes and bind mounts.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerBackend;

const LABEL: &str = "label";
/// lifeboatd's older spelling of a label selection: `selector = "label=KEY=VALUE"`.
const SELECTOR: &str = "selector";
const SETTLE: &str = "settle";

#[async_trait]
impl Backend for ContainerBackend {
    fn kind(&self) -> Kind {
        Kind::CONTAINER
    }

    fn about(&self) -> &'static str {
        "Docker containers: filesystem, configuration, volumes and bind mounts"
    }

    fn commands(&self) -> Vec<TargetCommand> {
        let label = OptionSpec::value(LABEL, "KEY=VALUE", "KEY=VALUE, or KEY for any value.");
        vec![
            TargetCommand {
                name: "container",
                about: "A Docker container: filesystem, configuration, volumes and bind mounts.",
                target: Some("CONTAINER"),
                target_help: "The container's name or id.",
                options: vec![
                    OptionSpec::CHANGED_ONLY,
                    OptionSpec::value(
                        SELECTOR,
                        "label=KEY=VALUE",
                        "Every container carrying a label instead of one container.",
                    ),
                ],
            },
            TargetCommand {
                name: "containers",
                about: "Every container carrying a label (running or not), one snapshot each, \
                        named after the container; goes on past a failure and reports each \
                        result.",
                target: None,
                target_help: "",
                options: vec![label.required(), OptionSpec::CHANGED_ONLY],
            },
        ]
    }

    fn check(&self, spec: &TargetSpec) -> Result<()> {
        match (spec.target.is_empty(), selection(&spec.options)?) {
            (true, None) => Err(Error::InvalidInput {
                what: "a container target needs a container name or a label selection".into(),
                hint: "give a container name, or label=KEY=VALUE as the selection".into(),
            }),
            (false, Some(_)) => Err(Error::InvalidInput {
                what: format!(
                    "container {:?} and a label selection were both given; give one",
                    spec.target
                ),
                hint: "give a container name or a label selection, not both".into(),
            }),
            _ => Ok(()),
        }
    }

    async fn members(&self, spec: &TargetSpec) -> Result<Vec<Member>> {
        self.check(spec)?;
        let mut one = TargetSpec::new(Kind::CONTAINER, spec.target.clone());
        if spec.options.flag(OptionSpec::CHANGED_ONLY.name) {
            one.options.push(OptionSpec::CHANGED_ONLY.name, "true");
        }
        let Some(label) = selection(&spec.options)? else {
            // Taken by id, a container's snapshots are still named after the container; when
            // the engine cannot say, the capture reports why.
            let backup = ContainerBackup::new(spec.target.clone());
            let name = backup.container_name().await.unwrap_or_else(|_| spec.target.clone());
            return Ok(vec![Member { member: None, default_name: name, spec: one }]);
        };
        let names = containers_with_label(label).await?;
        if names.is_empty() {
            return Err(Error::InvalidInput {
                what: format!("no container carries the label {label}"),
                hint: "check the label with `docker ps -a --filter label=KEY=VALUE`".into(),
            });
        }
        Ok(names
            .into_iter()
            .map(|name| Member {
                member: Some(name.clone()),
                default_name: name.clone(),
                spec: TargetSpec { target: name, ..one.clone() },
            })
            .collect())
    }

    fn backup(&self, spec: &TargetSpec) -> Result<Box<dyn Backup>> {
        self.check(spec)?;
        if selection(&spec.options)?.is_some() {
            return Err(Error::InvalidInput {
                what: "a label selection is many containers; back up each member".into(),
                hint: "take the members of the selection first".into(),
            });
        }
        Ok(Box::new(ContainerBackup::new(spec.target.clone())))
    }

    fn restore_options(&self) -> Vec<OptionSpec> {
        vec![OptionSpec::value(
            SETTLE,
            "DURATION",
            "Containers: how long the new container must keep running (and be healthy) before \
             the old one is removed, e.g. 10s (default 5s).",
        )]
    }

    async fn plan_restore(
        &self,
        snapshot: &dyn Snapshot,
        to: &str,
        options: &RestoreOptions,
        selection: &Options,
    ) -> Result<Box<dyn RestorePlan>> {
        let Some(name) = to.strip_prefix("container:") else {
            return Err(Error::InvalidInput {
                what: format!(
                    "snapshot {} is a container snapshot; it cannot be restored to {to}",
                    snapshot.id().short()
                ),
                hint: "restore a container snapshot to container:NAME".into(),
            });
        };
        let settle = selection.value(SETTLE).map(settle_time).transpose()?;
        let plan = ContainerRestorePlan::prepare(snapshot, name, options).await?;
        Ok(Box::new(match settle {
            Some(settle) => plan.with_settle(settle),
            None => plan,
        }))
    }

    fn drill(&self, _options: &Options) -> Result<Box<dyn ScratchDrill>> {
        Ok(Box::new(ContainerDrill::default()))
    }

    fn printable_metadata(&self, metadata: &serde_json::Value) -> serde_json::Value {
        crate::redact(metadata)
    }

    fn quiet_logs(&self) -> Vec<&'static str> {
        vec![crate::LOG_DIRECTIVE]
    }

    async fn leftovers(&self, clean: bool) -> Result<Vec<Leftover>> {
        match clean {
            true => crate::clean_leftovers().await,
            false => crate::leftovers().await,
        }
    }
}

/// The label of a selection: `label=KEY=VALUE` (`selector`), or `KEY=VALUE` (`label`).
fn selection(options: &Options) -> Result<Option<&str>> {
    if let Some(label) = options.value(LABEL) {
        return Ok(Some(label));
    }
    match options.value(SELECTOR) {
        None => Ok(None),
        Some(s) => match s.strip_prefix("label=") {
            Some(label) if label.contains('=') => Ok(Some(label)),
            _ => Err(Error::InvalidInput {
                what: format!("selector {s:?} must look like label=KEY=VALUE"),
                hint: "select containers by label, as label=KEY=VALUE".into(),
            }),
        },
    }
}

fn settle_time(text: &str) -> Result<Duration> {
    lifeboat_core::parse_duration(text).map_err(|e| Error::InvalidInput {
        what: format!("settle {text:?}: {e}"),
        hint: "give a duration such as 10s".into(),
    })
}
