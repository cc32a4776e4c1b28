//! `lifeboat export SNAPSHOT [--where C] [--table T]… [--format sql|csv|jsonl] [--out DIR|-]`

use std::path::PathBuf;
use std::process::ExitCode;

use lifeboat_core::{ExportFormat, ExportRequest, ExportTo, Registry};

use crate::output::print_json;
use crate::progress::CliProgress;

/// What `export` was asked.
pub struct Request {
    pub snapshot: String,
    pub name: Option<String>,
    pub predicate: Option<String>,
    pub tables: Vec<String>,
    pub format: String,
    pub out: String,
    pub json: bool,
    pub server: Option<String>,
}

pub async fn run(url: &str, registry: &Registry, request: Request) -> anyhow::Result<ExitCode> {
    let to = if request.out == "-" {
        ExportTo::Stdout
    } else {
        ExportTo::Folder(PathBuf::from(&request.out))
    };
    if request.json && to == ExportTo::Stdout {
        return Err(lifeboat_core::Error::InvalidInput {
            what: "--json needs --out DIR: standard output holds the export itself".into(),
            hint: "give --out DIR, or leave --json out".into(),
        }
        .into());
    }
    let format: ExportFormat = request.format.parse().map_err(anyhow::Error::msg)?;
    let repo = super::open_repo(url).await?;
    let snap = super::find(&repo, &request.snapshot, request.name.as_deref()).await?;
    let export = ExportRequest {
        predicate: request.predicate,
        tables: request.tables,
        format,
        to: to.clone(),
        server: request.server,
    };
    let progress = CliProgress::new();
    let report = registry.export(&snap, &export, &progress).await?;
    if request.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    // On standard output the export is the output: the summary goes to stderr.
    let lines: Vec<String> = report
        .tables
        .iter()
        .map(|t| match &t.file {
            Some(file) => format!("{}: {} rows -> {file}", t.table, t.rows),
            None => format!("{}: {} rows", t.table, t.rows),
        })
        .collect();
    for line in lines {
        if to == ExportTo::Stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
