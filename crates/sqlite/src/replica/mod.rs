//! Continuous replication of a SQLite database into the repository: an RPO of seconds.
//!
//! The replicator follows the database's `-wal` ([`walfile`]) and ships each committed
//! transaction's pages as immutable segments ([`Segment`]); it never reads a frame whose
//! transaction is not committed and whole (SQLite's own checksum chain). A base snapshot (a
//! regular SQLite snapshot that records where it stands, [`ReplicaPoint`]) starts each
//! generation and is taken again every `snapshot_every`; a restore to a point applies the
//! segments after the nearest base ([`point_in_time`]).
//!
//! No shipped history has a hole it does not know of. A read lock held by a child process
//! ([`WalHolder`]) keeps SQLite from restarting the `-wal` over frames not shipped yet, also
//! while the replicator is down after a kill. When that cannot be vouched for (the `-wal`
//! restarted while nobody held it, or was replaced), the replicator starts a new generation
//! with a fresh base snapshot, which deduplicates against the last one.
//!
//! The application keeps writing throughout. The replicator restarts the `-wal` itself
//! (`wal_checkpoint(RESTART)`, a moment's wait for writers) once it passes
//! `checkpoint_bytes` and everything in it is shipped; an application's own checkpoints copy
//! pages back as usual but cannot restart the `-wal` while the lock is held.

mod anchor;
mod compact;
mod holder;
mod point;
mod segment;
pub mod walfile;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_core::replica::{ReplicaStatus, ReplicaStore, ReplicateRequest, SegmentName};
use lifeboat_core::{Result, Tags};
use tracing::{debug, info, warn};

pub use anchor::ReplicaPoint;
pub use holder::{HOLD_WORD, ORPHAN_HOLD, Takeover, WalHolder, holder_file, run_holder};
pub use point::{PointSnapshot, point_in_time};
pub use segment::{CommitInfo, Merge, Segment, SegmentHeader, ShippedCommit};

use crate::error::SqliteError;
use crate::restore::journal_path;
use walfile::{
    AfterTail, WalCommit, WalHeader, WalPosition, WalRead, read_after, read_header, read_old_tail,
};

/// How long a base snapshot waits for the write lock before trying again next round.
const WRITE_LOCK_WAIT: Duration = Duration::from_millis(100);

/// The tag base snapshots of a replica carry.
pub const BASE_TAG: &str = "replica-base";

/// How a replicator runs: the request, with the limits that are not settings.
#[derive(Debug, Clone)]
pub struct ReplicateOptions {
    /// What was asked.
    pub request: ReplicateRequest,
    /// The `-wal` size past which the replicator restarts it, once everything is shipped.
    pub checkpoint_bytes: u64,
    /// Shipped at once when this many page bytes are waiting, whatever the interval.
    pub segment_bytes: usize,
}

impl ReplicateOptions {
    /// The request with the default limits: a 4 MiB `-wal` (SQLite's own automatic
    /// checkpoint is at about 4 MiB too) and 16 MiB segments.
    pub fn new(request: ReplicateRequest) -> Self {
        ReplicateOptions { request, checkpoint_bytes: 4 << 20, segment_bytes: 16 << 20 }
    }

    fn holder_command(&self, path: &Path) -> Result<Command> {
        let Some((program, args)) = self.request.helper.split_first() else {
            return Err(lifeboat_core::Error::InvalidInput {
                what: "replication needs the command that runs its lock holder".into(),
                hint: "give ReplicateRequest::helper, such as [lifeboat, __replica-helper, sqlite]"
                    .into(),
            });
        };
        let mut command = Command::new(program);
        command.args(args).arg(HOLD_WORD).arg(path);
        Ok(command)
    }
}

/// Where following the `-wal` stands.
#[derive(Debug)]
struct Follow {
    generation: u32,
    next_txid: u64,
    pos: Option<WalPosition>,
    page_size: u32,
    pending: Vec<ShippedCommit>,
    pending_bytes: usize,
    oldest_pending: Option<Instant>,
    /// Nobody may have held the lock since the last shipment: a restart seen now cannot be
    /// vouched for.
    lapsed: bool,
    /// Our own checkpoint ended the `-wal` generation here: a restart after it is whole.
    known_end: Option<(WalHeader, u32)>,
    last_base: Option<DateTime<Utc>>,
    /// When the lock was last moved forward.
    held_at: Instant,
    /// A break found and the reason, until its new generation's base snapshot is taken.
    broken: Option<&'static str>,
}

/// Follows one database and ships into one store.
pub struct Replicator<'a> {
    path: PathBuf,
    wal: PathBuf,
    options: ReplicateOptions,
    store: &'a dyn ReplicaStore,
    holder: Option<WalHolder>,
    follow: Follow,
    status: ReplicaStatus,
    /// What was shipped since the last level-1 segment.
    level1: Option<Merge>,
    /// When the listing was last tidied.
    tidied: Option<Instant>,
}

/// A level-2 merge being built while the replicator goes on shipping.
type Background<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<SegmentName>>> + Send + 'a>>;

/// What one look at the `-wal` found.
enum Looked {
    /// Nothing that breaks the history (maybe new commits).
    Fine,
    /// A break that cannot be vouched for: a new generation is needed.
    Break(&'static str),
}

impl<'a> Replicator<'a> {
    /// Checks the database, starts the lock holder and finds where the repository's history
    /// of the replica ends. Nothing is shipped yet.
    ///
    /// # Errors
    /// A missing file or non-database, a database not in WAL mode, a holder that cannot be
    /// started, store errors.
    pub async fn start(
        path: &Path,
        options: ReplicateOptions,
        store: &'a dyn ReplicaStore,
    ) -> Result<Replicator<'a>> {
        lifeboat_core::check_snapshot_name(&options.request.name)?;
        crate::inspect::check_is_database(path)?;
        // One spelling of the path for the holder's command line and its pid file.
        let canonical =
            std::fs::canonicalize(path).map_err(SqliteError::io("resolving the path of", path))?;
        let path = canonical.as_path();
        let (mode, page_size) = {
            let conn = holder::open_quiet(path)?;
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .map_err(SqliteError::sqlite("reading the journal mode of", path))?;
            let page_size: u32 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(SqliteError::sqlite("reading the page size of", path))?;
            (mode.to_ascii_lowercase(), page_size)
        };
        if mode != "wal" {
            return Err(SqliteError::Replica {
                path: path.into(),
                reason: format!(
                    "it is in {mode} journal mode; replication follows the -wal, so it needs WAL mode (`sqlite3 {} 'PRAGMA journal_mode=WAL'`, which persists; applications keep working)",
                    path.display()
                ),
            }
            .into());
        }
        let (holder, takeover) = WalHolder::spawn(options.holder_command(path)?, path)?;
        let mut replicator = Replicator {
            path: path.into(),
            wal: journal_path(path, "-wal"),
            options,
            store,
            holder: Some(holder),
            follow: Follow {
                generation: 0,
                next_txid: 1,
                pos: None,
                page_size,
                pending: Vec::new(),
                pending_bytes: 0,
                oldest_pending: None,
                lapsed: takeover == Takeover::Lapsed,
                known_end: None,
                last_base: None,
                held_at: Instant::now(),
                broken: None,
            },
            status: ReplicaStatus::default(),
            level1: None,
            tidied: None,
        };
        replicator.resume().await?;
        Ok(replicator)
    }

    /// What has been done so far, with the lag as of now.
    pub fn status_now(&self) -> ReplicaStatus {
        let lag = self.follow.oldest_pending.map(|t| t.elapsed()).unwrap_or_default();
        ReplicaStatus { lag_ms: lag.as_millis() as u64, ..self.status.clone() }
    }

    /// Finds the end of the replica's history in the store: the newest segment or base.
    async fn resume(&mut self) -> Result<()> {
        let name = self.options.request.name.clone();
        let newest_segment = self
            .store
            .segment_names(&name)
            .await?
            .iter()
            .filter_map(|n| SegmentName::parse(n))
            .max_by_key(|n| n.last);
        let newest_base = self
            .store
            .snapshots_named(&name)
            .await?
            .iter()
            .filter_map(|s| base_point(s.manifest()))
            .max_by_key(|p| p.txid);
        self.follow.last_base = newest_base.as_ref().map(|b| b.time);
        let newest_segment =
            newest_segment.filter(|seg| newest_base.as_ref().is_none_or(|b| seg.last >= b.txid));
        match (newest_segment, newest_base) {
            (Some(seg), _) => {
                let bytes = self.store.fetch_segment(&name, &seg.to_string()).await?;
                let header = Segment::decode_header(&bytes).map_err(|reason| {
                    lifeboat_core::Error::Corrupt {
                        object: format!("segment {seg} of replica {name:?}"),
                        expected: "a segment".into(),
                        actual: reason,
                    }
                })?;
                self.follow.generation = header.generation;
                self.follow.next_txid = seg.last + 1;
                self.follow.pos = header.end;
                self.status.last_commit = header.commits.last().map(|c| c.time);
            }
            (_, Some(base)) => {
                self.follow.generation = base.generation;
                self.follow.next_txid = base.txid + 1;
                self.follow.pos = base.wal;
                self.status.last_commit = Some(base.time);
            }
            (None, None) => return self.start_generation("the replica has no history yet").await,
        }
        self.status.generation = self.follow.generation;
        self.status.last_txid = self.follow.next_txid - 1;
        match self.look()? {
            Looked::Fine => {
                self.status.resumed = true;
                info!(name = %self.options.request.name, txid = self.status.last_txid, generation = self.follow.generation, "resuming the replica's history without a gap");
            }
            Looked::Break(why) => self.start_generation(why).await?,
        }
        Ok(())
    }

    /// Reads what the `-wal` holds beyond our position.
    fn look(&mut self) -> Result<Looked> {
        let wal = self.wal.clone();
        let io = |e| SqliteError::io("reading", &wal)(e);
        loop {
            let Some(pos) = self.follow.pos else {
                match read_header(&wal).map_err(io)? {
                    None => return Ok(Looked::Fine),
                    Some(_) if self.follow.lapsed => {
                        return Ok(Looked::Break("a -wal appeared while nothing held it"));
                    }
                    Some(header) => {
                        self.follow.pos = Some(WalPosition::start_of(header));
                        continue;
                    }
                }
            };
            match read_after(&wal, &pos).map_err(io)? {
                WalRead::Commits(commits, at) => {
                    self.take(commits, at.header.page_size);
                    self.follow.pos = Some(at);
                    // The frames after `pos` were still there, and the lock holds now.
                    self.follow.lapsed = false;
                    return Ok(Looked::Fine);
                }
                // Truncated by a checkpoint: its next header says whether it restarted once.
                WalRead::NewHeader(None) => return Ok(Looked::Fine),
                WalRead::NewHeader(Some(next)) => {
                    if next.page_size != pos.header.page_size {
                        return Ok(Looked::Break("the -wal's page size changed"));
                    }
                    // Commits of the old generation we had not read yet are still in the
                    // file unless the new generation has grown over them.
                    let (commits, at, after) = read_old_tail(&wal, &pos, &next).map_err(io)?;
                    self.take(commits, pos.header.page_size);
                    self.follow.pos = Some(at);
                    // While the lock was held without a break, SQLite could restart the log
                    // only once everything in it was shipped (see the holder's doc). Without
                    // that, one restart (salt-1 one higher) is whole when the old log's end
                    // is known: its next frame is still there and is not its own, or our
                    // checkpoint saw it end there.
                    let ended_here = after == AfterTail::Ended
                        || self.follow.known_end == Some((at.header, at.frame));
                    if self.follow.lapsed && !(pos.header.restarted_once_into(&next) && ended_here)
                    {
                        return Ok(Looked::Break("the -wal restarted while nothing held it"));
                    }
                    debug!(checkpoint_seq = next.checkpoint_seq, "following the -wal's restart");
                    self.status.restarts_followed += 1;
                    self.follow.pos = Some(WalPosition::start_of(next));
                    self.follow.lapsed = false;
                    self.follow.known_end = None;
                }
            }
        }
    }

    /// Gives commits read from the `-wal` their transaction ids and times.
    fn take(&mut self, commits: Vec<WalCommit>, page_size: u32) {
        if commits.is_empty() {
            return;
        }
        let now = Utc::now();
        self.follow.page_size = page_size;
        self.follow.oldest_pending.get_or_insert_with(Instant::now);
        for commit in commits {
            self.follow.pending_bytes += commit.pages.len() * page_size as usize;
            self.follow.pending.push(ShippedCommit {
                first: None,
                txid: self.follow.next_txid,
                time: now,
                db_pages: commit.db_pages,
                pages: commit.pages,
            });
            self.follow.next_txid += 1;
        }
    }

    /// Ships what is pending as one segment, then moves the lock forward.
    async fn ship(&mut self) -> Result<()> {
        if self.follow.pending.is_empty() {
            return Ok(());
        }
        let segment = Segment {
            generation: self.follow.generation,
            level: 0,
            page_size: self.follow.page_size,
            end: self.follow.pos,
            commits: std::mem::take(&mut self.follow.pending),
        };
        let Some(name) = segment.name() else { return Ok(()) };
        let bytes = segment.encode();
        if let Err(e) =
            self.store.push_segment(&self.options.request.name, &name.to_string(), bytes).await
        {
            // Kept for the next attempt; the lock still holds every frame.
            self.follow.pending = segment.commits;
            return Err(e);
        }
        self.status.segments += 1;
        self.status.transactions += segment.commits.len() as u64;
        self.status.page_bytes += self.follow.pending_bytes as u64;
        self.status.last_txid = name.last;
        self.status.last_commit = segment.commits.last().map(|c| c.time);
        self.follow.pending_bytes = 0;
        self.follow.oldest_pending = None;
        debug!(segment = %name, "shipped");
        self.hold()?;
        self.merge_level1(&segment).await;
        Ok(())
    }

    /// Adds a shipped segment to the level-1 merge. A merge is stored once the next shipment
    /// would take it past `spans[0]`, once `spans[0]` has passed since it began (see
    /// [`Replicator::tidy`]), or once it holds [`compact::LEVEL1_BYTES`].
    async fn merge_level1(&mut self, segment: &Segment) {
        if let Some(end) = segment.commits.last().map(|c| c.time) {
            self.store_level1_past(end).await;
        }
        let added = self.level1.as_mut().is_some_and(|m| m.add(segment).is_ok());
        if !added {
            // A new generation (or the first segment): what was merged before goes first.
            self.store_level1().await;
            self.level1 = Merge::new(segment);
        }
        if self.level1.as_ref().is_some_and(|m| m.bytes() >= compact::LEVEL1_BYTES) {
            self.store_level1().await;
        }
    }

    /// Stores the level-1 merge when `spans[0]` has passed between its first commit and `at`.
    async fn store_level1_past(&mut self, at: DateTime<Utc>) {
        let span = chrono::TimeDelta::from_std(self.options.request.compaction.spans[0])
            .unwrap_or(chrono::TimeDelta::MAX);
        if self.level1.as_ref().is_some_and(|m| at - m.started() >= span) {
            self.store_level1().await;
        }
    }

    /// Stores the level-1 merge when it replaces enough shipped segments to be worth a copy
    /// of their pages ([`compact::LEVEL1_MIN_SEGMENTS`]). A failure costs only the merge: the
    /// shipped segments stay and go into level 2 later.
    async fn store_level1(&mut self) {
        let Some(merge) = self.level1.take() else { return };
        if merge.segments() < compact::LEVEL1_MIN_SEGMENTS {
            return;
        }
        match compact::store_merged(self.store, &self.options.request.name, merge, 1).await {
            Ok(name) => {
                self.status.merged += 1;
                debug!(segment = %name, "merged into level 1");
            }
            Err(e) => {
                warn!(error = %e, "storing a level-1 segment failed; its segments stay as shipped")
            }
        }
    }

    /// Drops what merged segments replaced once their points are no longer kept, and
    /// returns the next level-2 merge to build, if one is due. Runs every `spans[0]`.
    async fn tidy(&mut self) -> Result<Option<Background<'a>>> {
        let rules = self.options.request.compaction;
        if self.tidied.is_some_and(|t| t.elapsed() < rules.spans[0]) {
            return Ok(None);
        }
        self.tidied = Some(Instant::now());
        // A merge whose minute has passed while nothing was shipped is stored now.
        self.store_level1_past(Utc::now()).await;
        let name = self.options.request.name.clone();
        let names: Vec<SegmentName> = self
            .store
            .segment_names(&name)
            .await?
            .iter()
            .filter_map(|n| SegmentName::parse(n))
            .collect();
        let tidy = compact::plan(&names, Utc::now(), &rules);
        if !tidy.drop.is_empty() {
            let files: Vec<String> = tidy.drop.iter().map(ToString::to_string).collect();
            self.store.drop_segments(&name, &files).await?;
            self.status.dropped += files.len() as u64;
            debug!(dropped = files.len(), "dropped segments that merged ones replaced");
        }
        let Some(chain) = tidy.level2.into_iter().next() else { return Ok(None) };
        let store = self.store;
        Ok(Some(Box::pin(async move { compact::merge_stored(store, &name, chain, 2).await })))
    }

    /// Moves the lock forward; a holder that died is started again, and then nothing can
    /// be vouched for until the `-wal` is read again.
    fn hold(&mut self) -> Result<()> {
        self.follow.held_at = Instant::now();
        if let Some(holder) = self.holder.as_mut()
            && holder.hold().is_ok()
        {
            return Ok(());
        }
        warn!(path = %self.path.display(), "the -wal's lock holder was gone: starting it again");
        self.holder = None;
        let (holder, _) = WalHolder::spawn(self.options.holder_command(&self.path)?, &self.path)?;
        self.holder = Some(holder);
        self.follow.lapsed = true;
        Ok(())
    }

    /// Restarts the `-wal` once it is large and everything in it is shipped.
    fn checkpoint_if_large(&mut self) -> Result<()> {
        let Some(pos) = self.follow.pos else { return Ok(()) };
        // The frames of the current log, not the file's size: a restarted log keeps its size
        // until it is written over. And once per end: a log our checkpoint already saw end
        // here restarts at the next commit.
        let size = u64::from(pos.frame) * pos.header.frame_size();
        if size < self.options.checkpoint_bytes
            || !self.follow.pending.is_empty()
            || self.follow.known_end == Some((pos.header, pos.frame))
        {
            return Ok(());
        }
        if let Some(holder) = self.holder.as_mut() {
            holder.release()?;
        }
        self.follow.lapsed = true;
        let result = holder::open_quiet(&self.path).and_then(|conn| {
            conn.busy_timeout(Duration::from_millis(200))
                .map_err(SqliteError::sqlite("configuring", &self.path))?;
            conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(SqliteError::sqlite("checkpointing", &self.path))
        });
        self.hold()?;
        match result {
            // While it held the write lock, the -wal ended at `log`: a restart after it
            // starts there.
            Ok((busy, log)) => {
                debug!(size, frames = log, busy, "checkpointed");
                self.follow.known_end = u32::try_from(log).ok().map(|f| (pos.header, f));
            }
            Err(e) => {
                warn!(error = %e, "checkpoint failed; the -wal keeps growing until one succeeds")
            }
        }
        Ok(())
    }

    /// Starts a new generation with a base snapshot of the database as it is now (after
    /// shipping the commits read before the break). When writers cannot be held off right
    /// now, the break stays recorded and the next round tries again.
    async fn start_generation(&mut self, why: &'static str) -> Result<()> {
        if self.follow.broken.is_none() {
            if self.follow.generation > 0 {
                warn!(name = %self.options.request.name, reason = why, "starting a new generation with a fresh base snapshot: the history may have a gap before it");
            } else {
                info!(name = %self.options.request.name, "starting the replica with a base snapshot");
            }
        }
        self.follow.broken = Some(why);
        self.ship().await?;
        if self.base_snapshot(true).await? {
            self.follow.broken = None;
        }
        Ok(())
    }

    /// Where the `-wal` ends now (read while writers are held off).
    fn wal_end(&self) -> std::result::Result<Option<WalPosition>, SqliteError> {
        let io = SqliteError::io("reading", &self.wal);
        let Some(header) = read_header(&self.wal).map_err(SqliteError::io("reading", &self.wal))?
        else {
            return Ok(None);
        };
        Ok(match read_after(&self.wal, &WalPosition::start_of(header)).map_err(io)? {
            WalRead::Commits(_, at) => Some(at),
            WalRead::NewHeader(_) => None,
        })
    }

    /// Takes a base snapshot: of a new generation, or of the current one (then every commit
    /// up to it is shipped too). Writers are held off for a moment (the write lock, as any
    /// writer takes it) while the `-wal` is read to its end and a read transaction is begun
    /// there; the snapshot streams from that transaction while writers go on. `false` when
    /// the write lock was busy (an application's checkpoint may be waiting for our read
    /// lock to move, which the next round does).
    async fn base_snapshot(&mut self, new_generation: bool) -> Result<bool> {
        let writer = holder::open_quiet(&self.path)?;
        writer
            .busy_timeout(WRITE_LOCK_WAIT)
            .map_err(SqliteError::sqlite("configuring", &self.path))?;
        match writer.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                debug!("the write lock is busy; the base snapshot waits for the next round");
                return Ok(false);
            }
            Err(e) => {
                return Err(SqliteError::sqlite("holding writers off on", &self.path)(e).into());
            }
        }
        let anchored = (|| -> Result<_> {
            let mut new_generation = new_generation;
            if !new_generation && let Looked::Break(why) = self.look()? {
                warn!(name = %self.options.request.name, reason = why, "starting a new generation with a fresh base snapshot: the history may have a gap before it");
                new_generation = true;
            }
            let end = if new_generation { self.wal_end()? } else { self.follow.pos };
            let conn = holder::open_quiet(&self.path)?;
            holder::begin_read(&conn, &self.path)?;
            Ok((conn, end, new_generation))
        })();
        let _ = writer.execute_batch("ROLLBACK");
        let (conn, end, new_generation) = anchored?;
        if new_generation {
            // What was read before the break is whole: it goes with its generation.
            self.ship().await?;
            self.follow.generation += 1;
            self.follow.next_txid += 1;
            self.status.generations_started += 1;
        }
        self.follow.pos = end;
        self.follow.lapsed = false;
        self.follow.known_end = None;
        let time = Utc::now();
        let point = ReplicaPoint {
            name: self.options.request.name.clone(),
            generation: self.follow.generation,
            txid: self.follow.next_txid - 1,
            time,
            wal: end,
            applied: 0,
        };
        let capture = anchor::AnchoredCapture {
            path: self.path.clone(),
            conn: Mutex::new(Some(conn)),
            point: point.clone(),
        };
        let tags = Tags::from([(BASE_TAG.to_string(), format!("g{}", point.generation))]);
        let id = self.store.save_snapshot(&capture, &self.options.request.name, tags).await?;
        info!(snapshot = %id.short(), generation = point.generation, txid = point.txid, "base snapshot taken");
        self.follow.last_base = Some(time);
        self.status.snapshots += 1;
        self.status.generation = self.follow.generation;
        if self.follow.pending.is_empty() {
            self.status.last_txid = point.txid;
            self.status.last_commit = Some(time);
        }
        self.ship().await?;
        Ok(true)
    }

    /// One round: read the `-wal`, ship when due, checkpoint or snapshot when due.
    ///
    /// # Errors
    /// Store errors (the commits stay pending, the lock holds them) and SQLite errors.
    pub async fn step(&mut self) -> Result<()> {
        if let Some(why) = self.follow.broken {
            self.start_generation(why).await?;
            return self.hold_if_idle();
        }
        if let Looked::Break(why) = self.look()? {
            return self.start_generation(why).await;
        }
        let due = self
            .follow
            .oldest_pending
            .is_some_and(|t| t.elapsed() >= self.options.request.interval)
            || self.follow.pending_bytes >= self.options.segment_bytes;
        if due {
            self.ship().await?;
        }
        self.hold_if_idle()?;
        self.checkpoint_if_large()?;
        let snapshot_due = self.follow.last_base.is_none_or(|t| {
            Utc::now().signed_duration_since(t).to_std().unwrap_or_default()
                >= self.options.request.snapshot_every
        });
        if snapshot_due {
            self.ship().await?;
            self.base_snapshot(false).await?;
        }
        Ok(())
    }

    /// With everything read shipped, the lock moves forward even when idle: an
    /// application's own checkpoint that waits for it (FULL, RESTART, TRUNCATE) finishes
    /// within about two intervals.
    fn hold_if_idle(&mut self) -> Result<()> {
        if self.follow.pending.is_empty()
            && self.follow.held_at.elapsed() >= self.options.request.interval
        {
            self.hold()?;
        }
        Ok(())
    }

    /// Runs rounds every `poll` until `stop` resolves, then ships what is pending. A failing
    /// store is retried (the lock keeps every frame meanwhile), with waits doubling to 30 s.
    ///
    /// # Errors
    /// SQLite errors and a failure to ship at the end.
    pub async fn run(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
        mut on_round: impl FnMut(&Replicator<'_>),
    ) -> Result<ReplicaStatus> {
        tokio::pin!(stop);
        let mut backoff = Duration::ZERO;
        let mut level2: Option<Background<'a>> = None;
        loop {
            let wait = self.options.request.poll.max(backoff);
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
                merged = async {
                    match level2.as_mut() {
                        Some(merging) => merging.await,
                        None => std::future::pending().await,
                    }
                }, if level2.is_some() => {
                    level2 = None;
                    match merged {
                        Ok(Some(segment)) => {
                            self.status.merged += 1;
                            info!(segment = %segment, "merged into level 2");
                        }
                        Ok(None) => {}
                        Err(e) => warn!(error = %e, "building a level-2 segment failed; the segments stay as they are"),
                    }
                    continue;
                }
            }
            let mut stepped = self.step().await;
            if stepped.is_ok() && level2.is_none() {
                match self.tidy().await {
                    Ok(next) => level2 = next,
                    Err(e) => stepped = Err(e),
                }
            }
            match stepped {
                Ok(()) => backoff = Duration::ZERO,
                Err(e) if is_sqlite(&e) => return Err(e),
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                    warn!(error = %e, retry_in = ?backoff, "shipping failed; the commits wait (the -wal keeps them)");
                }
            }
            on_round(self);
        }
        if self.follow.broken.is_none() {
            self.look()?;
        }
        self.ship().await?;
        self.store_level1().await;
        Ok(self.status_now())
    }
}

fn is_sqlite(e: &lifeboat_core::Error) -> bool {
    matches!(e, lifeboat_core::Error::Native { kind, .. } if *kind == lifeboat_core::Kind::SQLITE)
}

/// The replica point a snapshot's manifest records, if it is a replica's base.
pub fn base_point(manifest: &lifeboat_core::Manifest) -> Option<ReplicaPoint> {
    serde_json::from_value(manifest.metadata.get("replica")?.clone()).ok()
}
