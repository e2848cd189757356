//! The `facewatch` command line. Errors end in one line on stderr and a non-zero status.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use facewatch::audit::{self, Actor};
use facewatch::access::{Role, Tokens};
use facewatch::config::{ServiceConfig, Settings};
use facewatch::data_lock::DataLock;
use facewatch::watchlist::enroll::{self, Examined};
use facewatch::eval;
use facewatch::media::Media;
use facewatch::pipeline::Pipeline;
use facewatch::vision::decode::decode_file;
use facewatch::vision::quality::{QualityGate, Rejection};
use facewatch::watchlist::Watchlist;
use facewatch::watchlist::policy::Policy;

#[derive(Parser)]
#[command(name = "facewatch", version, about = "Face-recognition checkpoint: watch-list matching on the edge")]
struct Cli {
    /// TOML file with settings (see facewatch.example.toml), read by every command: defaults,
    /// then this file, then FACEWATCH_* environment variables, then the flags given.
    #[arg(long, global = true, env = "FACEWATCH_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the checkpoint service (HTTP API). Configuration: --config file, then FACEWATCH_* env,
    /// then flags. While it runs, commands that change watch lists refuse (use the API).
    Serve,
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Inspect the audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Follow the central event stream.
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Enroll a subject from one or more photos (the largest good face of each).
    Enroll {
        #[arg(long)]
        list: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        name: Option<String>,
        /// Threshold for the list if it is created now (default: the model's).
        #[arg(long)]
        threshold: Option<f32>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Enroll a folder with one sub-folder of photos per subject.
    Import {
        #[arg(long)]
        list: String,
        #[arg(long)]
        threshold: Option<f32>,
        dir: PathBuf,
    },
    /// Match every face of every image against the watch lists.
    Identify {
        #[arg(long)]
        json: bool,
        /// Candidates to report per face.
        #[arg(long, default_value_t = 3)]
        top: usize,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Print detections and embeddings, one JSON line per face.
    Embed {
        #[arg(long, required = true)]
        json: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Show the watch lists.
    Lists {
        #[arg(long)]
        json: bool,
    },
    /// Remove a subject and purge its templates.
    Remove {
        #[arg(long)]
        list: String,
        #[arg(long)]
        subject: String,
    },
    /// Set a list's match threshold.
    Threshold {
        #[arg(long)]
        list: String,
        value: f32,
    },
    /// Measure accuracy on an LFW-style folder (pairs + open-set identification).
    Eval {
        /// Folder with <Identity>/*.jpg and pairs_lfw_view2.tsv.
        faces: PathBuf,
        /// Parallel pipelines (each with --threads intra-op threads).
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        role: String,
        /// Who or what holds the token (an officer's name, a camera id).
        #[arg(long)]
        name: String,
        /// The unique id of the person or device (e.g. a staff number) when they already hold a
        /// token; omitted = a new principal. Two-officer rules compare principals, not names.
        #[arg(long)]
        principal: Option<String>,
        /// A camera id this (camera) token may post frames as; repeat for more. Required for
        /// role camera, refused for the others.
        #[arg(long = "camera")]
        cameras: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum EventsAction {
    /// Print events from the JetStream stream, one JSON line each, with a durable consumer that
    /// resumes where it stopped.
    Tail {
        #[arg(long, env = "FACEWATCH_NATS_URL")]
        nats: String,
        #[arg(long, default_value = "FACEWATCH")]
        stream: String,
        /// Consumer name: each operator or system uses its own.
        #[arg(long, default_value = "facewatch-tail")]
        durable: String,
        /// Subject filter, e.g. "facewatch.*.*.alert.>".
        #[arg(long, default_value = "")]
        filter: String,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds without a new event.
        #[arg(long)]
        idle_exit: Option<u64>,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Recompute the hash chain; exit status 1 if it is broken.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Print entries as JSON lines.
    Show {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    facewatch::logging::init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let s = &cli.settings.load(cli.config.as_deref(), std::env::vars())?;
    match cli.command {
        Command::Serve => serve_cmd(s.clone()),
        Command::Token { action } => token_cmd(s, action),
        Command::Audit { action } => audit_cmd(s, action),
        Command::Events { action: EventsAction::Tail { nats, stream, durable, filter, count, idle_exit } } => {
            let o = facewatch::events::tail::TailOptions {
                url: nats,
                stream,
                durable,
                filter,
                count,
                idle_exit: idle_exit.map(std::time::Duration::from_secs),
            };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let mut out = std::io::stdout().lock();
            rt.block_on(facewatch::events::tail::tail(&o, |line| {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Enroll { list, subject, name, threshold, images } => {
            enroll_cmd(s, &list, &subject, name.as_deref(), threshold, &images)
        }
        Command::Import { list, threshold, dir } => import_cmd(s, &list, threshold, &dir),
        Command::Identify { json, top, images } => identify_cmd(s, json, top, &images),
        Command::Embed { json: _, images } => embed_cmd(s, &images),
        Command::Lists { json } => {
            let wl = open_watchlist_light(s)?;
            let lists = wl.summaries()?;
            if json {
                println!("{}", serde_json::to_string(&lists)?);
            } else if lists.is_empty() {
                println!("no watch lists");
            } else {
                println!("{:<24} {:>9} {:>9} {:>10}", "list", "threshold", "subjects", "templates");
                for l in lists {
                    println!("{:<24} {:>9.3} {:>9} {:>10}", l.name, l.threshold, l.subjects, l.templates);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Remove { list, subject } => {
            let _owner = own_data_dir(s)?;
            let mut wl = open_watchlist_light(s)?;
            let ids = wl.remove(&list, &subject, &Actor::local())?;
            wl.flush()?;
            Media::open(&s.data_dir)?.delete_references(&ids);
            println!("removed {subject} from {list} ({} templates purged)", ids.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Threshold { list, value } => {
            let _owner = own_data_dir(s)?;
            let mut wl = open_watchlist_light(s)?;
            let policy = Policy { threshold: value, ..wl.list(&list)?.policy };
            wl.set_policy(&list, &policy, &Actor::local())?;
            println!("{list}: threshold {value}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval { faces, workers } => eval_cmd(s, cli.settings.threads.is_some(), &faces, workers),
    }
}

/// Commands that change watch lists hold the data folder for their whole run, and refuse while
/// a running service holds it: the service would not see the change until restart.
fn own_data_dir(s: &ServiceConfig) -> anyhow::Result<DataLock> {
    Ok(DataLock::acquire(&s.data_dir)?)
}

/// One pipeline used from this thread: its two models never run at once, so they may spin.
fn open_pipeline(s: &ServiceConfig) -> anyhow::Result<Pipeline> {
    let mut opts = s.pipeline_options();
    opts.runtime.spin = true;
    Pipeline::open(&s.models_dir(), opts).context("loading models")
}

fn open_watchlist(s: &ServiceConfig, p: &Pipeline) -> anyhow::Result<Watchlist> {
    watchlist_for(s, &p.manifest.embedder)
}

/// The watch list without loading the model sessions (model identity from the manifest).
fn open_watchlist_light(s: &ServiceConfig) -> anyhow::Result<Watchlist> {
    watchlist_for(s, &facewatch::manifest::Manifest::load(&s.models_dir())?.embedder)
}

fn watchlist_for(s: &ServiceConfig, e: &facewatch::manifest::EmbedderSpec) -> anyhow::Result<Watchlist> {
    Ok(Watchlist::open(&s.data_dir, &s.index_factory, &e.name, e.embedding_size as u32)?)
}

fn reasons(r: &[Rejection]) -> String {
    r.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("; ")
}

/// Examines each photo with the local pipeline and judges it by the one enrollment path
/// (the API's): the stored source is `cli:<file name>`, never the local path.
fn assess_photos(s: &ServiceConfig, p: &mut Pipeline, images: &[PathBuf]) -> enroll::Assessed {
    let gate = QualityGate::enrollment();
    let mut assessed = enroll::Assessed::new();
    // One photo at a time: a folder of large photos never sits decoded in memory at once.
    for path in images {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let res = decode_file(path, s.max_pixels).and_then(|img| Ok((enroll::examine(p, &img, &gate)?, img)));
        let x = res.as_ref().map_err(|e| e.to_string()).map(|((face, refused), img)| Examined {
            image: img,
            face: face.as_ref(),
            refused: refused.as_ref(),
        });
        assessed.judge("cli", name, x);
    }
    assessed
}

/// The refused photos of an assessment, with their reasons, by path.
fn refusals(images: &[PathBuf], a: &enroll::Assessed) -> Vec<(PathBuf, String)> {
    images
        .iter()
        .zip(&a.verdicts)
        .filter(|(_, v)| !v.accepted)
        .map(|(p, v)| (p.clone(), v.reasons.join("; ")))
        .collect()
}

fn enroll_cmd(
    s: &ServiceConfig,
    list: &str,
    subject: &str,
    name: Option<&str>,
    threshold: Option<f32>,
    images: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let _owner = own_data_dir(s)?;
    let mut p = open_pipeline(s)?;
    let mut wl = open_watchlist(s, &p)?;
    let policy = Policy::with_threshold(threshold.unwrap_or(p.manifest.embedder.default_threshold));
    wl.create_list(list, &policy, &Actor::local())?;
    let assessed = assess_photos(s, &mut p, images);
    let refused = refusals(images, &assessed);
    for (path, why) in &refused {
        eprintln!("refused {}: {why}", path.display());
    }
    if assessed.accepted() == 0 {
        bail!("nothing enrolled for {subject}: every photo was refused");
    }
    let n = assessed.accepted();
    store_enrollment(s, &mut wl, list, subject, name, assessed)?;
    wl.flush()?;
    println!("enrolled {subject} in {list}: {n} template(s), {} photo(s) refused", refused.len());
    Ok(ExitCode::SUCCESS)
}

/// Stores the accepted templates (audited) and their reference images.
fn store_enrollment(
    s: &ServiceConfig,
    wl: &mut Watchlist,
    list: &str,
    subject: &str,
    name: Option<&str>,
    assessed: enroll::Assessed,
) -> anyhow::Result<()> {
    let media = Media::open(&s.data_dir)?;
    assessed.store(&media, |t| wl.enroll(list, subject, name, t, &Actor::local()))?;
    Ok(())
}

fn serve_cmd(cfg: ServiceConfig) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(facewatch::app::run(cfg))?;
    Ok(ExitCode::SUCCESS)
}
fn token_cmd(s: &ServiceConfig, action: TokenAction) -> anyhow::Result<ExitCode> {
    let mut tokens = Tokens::open(&s.data_dir.join("facewatch.db"))?;
    match action {
        TokenAction::Create { role, name, principal, cameras, json } => {
            let role: Role = role.parse()?;
            let t = tokens.create(&name, role, principal.as_deref(), &cameras, &Actor::local())?;
            if json {
                println!("{}", serde_json::to_string(&t)?);
            } else {
                println!("{}", t.token);
                eprintln!(
                    "token {} for {} ({}, principal {}): shown once, store it now",
                    t.id, t.name, t.role, t.principal
                );
            }
        }
        TokenAction::List => {
            for t in tokens.list()? {
                let state = if t.revoked { "revoked" } else { "active" };
                let cameras = if t.cameras.is_empty() { String::new() } else { format!(" [{}]", t.cameras.join(", ")) };
                println!("{:>4} {:<8} {:<8} {:<38} {}{cameras}", t.id, t.role.as_str(), state, t.principal, t.name);
            }
        }
        TokenAction::Revoke { id } => {
            tokens.revoke(id, &Actor::local())?;
            println!("token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_cmd(s: &ServiceConfig, action: AuditAction) -> anyhow::Result<ExitCode> {
    let db = s.data_dir.join("facewatch.db");
    if !db.exists() {
        bail!("no store at {} (set --data-dir)", db.display());
    }
    let tokens = Tokens::open(&db)?;
    match action {
        AuditAction::Verify { json } => {
            let v = audit::verify(tokens.conn())?;
            if json {
                println!("{}", serde_json::to_string(&v)?);
            } else if v.ok {
                println!("audit chain intact: {} entries", v.entries);
            } else {
                println!(
                    "audit chain BROKEN at entry {}: {}",
                    v.first_bad_seq.unwrap_or_default(),
                    v.problem.as_deref().unwrap_or("")
                );
            }
            Ok(if v.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        AuditAction::Show { after, limit } => {
            let mut out = std::io::stdout().lock();
            for e in audit::entries(tokens.conn(), after, limit)? {
                writeln!(out, "{}", serde_json::to_string(&e)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn import_cmd(s: &ServiceConfig, list: &str, threshold: Option<f32>, dir: &Path) -> anyhow::Result<ExitCode> {
    let mut subjects: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subjects.sort();
    if subjects.is_empty() {
        bail!("{}: no sub-folders (expected one folder of photos per subject)", dir.display());
    }
    let _owner = own_data_dir(s)?;
    let mut p = open_pipeline(s)?;
    let mut wl = open_watchlist(s, &p)?;
    let policy = Policy::with_threshold(threshold.unwrap_or(p.manifest.embedder.default_threshold));
    wl.create_list(list, &policy, &Actor::local())?;
    let bar = indicatif::ProgressBar::new(subjects.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} subjects {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut enrolled, mut templates) = (0usize, 0usize);
    let mut refused_photos: Vec<(PathBuf, String)> = Vec::new();
    let mut refused_subjects = Vec::new();
    for sub in &subjects {
        let id = sub.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(sub)
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        photos.sort();
        let assessed = assess_photos(s, &mut p, &photos);
        refused_photos.extend(refusals(&photos, &assessed));
        if assessed.accepted() == 0 {
            refused_subjects.push(id);
        } else {
            templates += assessed.accepted();
            let name = id.replace('_', " ");
            match store_enrollment(s, &mut wl, list, &id, Some(&name), assessed) {
                Ok(_) => enrolled += 1,
                Err(e) => refused_photos.push((sub.clone(), e.to_string())),
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    wl.flush()?;
    println!(
        "imported {enrolled}/{} subjects into {list}: {templates} templates; {} photos refused",
        subjects.len(),
        refused_photos.len()
    );
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for (_, why) in &refused_photos {
        let key = why.split(" (").next().unwrap_or(why).to_string();
        *by_reason.entry(key).or_default() += 1;
    }
    for (why, n) in &by_reason {
        println!("  refused {n:>5}: {why}");
    }
    for (path, why) in &refused_photos {
        eprintln!("refused {}: {why}", path.display());
    }
    if !refused_subjects.is_empty() {
        println!("  subjects with no usable photo: {}", refused_subjects.join(", "));
    }
    Ok(if enrolled > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn identify_cmd(s: &ServiceConfig, json: bool, top: usize, images: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut p = open_pipeline(s)?;
    let wl = open_watchlist(s, &p)?;
    let gate = QualityGate::default();
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for path in images {
        let file = path.display().to_string();
        let faces = match decode_file(path, s.max_pixels).and_then(|img| p.faces(&img, Some(&gate))) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                failed = true;
                continue;
            }
        };
        let mut rows = Vec::new();
        for f in &faces {
            let matches = match &f.embedding {
                Some(e) => wl.matches(e, top)?,
                None => Vec::new(),
            };
            rows.push((f, matches));
        }
        if json {
            let faces: Vec<_> = rows
                .iter()
                .map(|(f, m)| {
                    json!({
                        "bbox": f.detection.bbox,
                        "score": f.detection.score,
                        "quality": f.quality,
                        "status": if !f.rejections.is_empty() { "rejected" } else if m.is_empty() { "unknown" } else { "match" },
                        "rejections": f.rejections.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                        "matches": m,
                    })
                })
                .collect();
            writeln!(out, "{}", json!({"file": file, "faces": faces}))?;
        } else {
            writeln!(out, "{file}: {} face(s)", rows.len())?;
            for (i, (f, m)) in rows.iter().enumerate() {
                let b = f.detection.bbox;
                let head = format!("  face {} at [{:.0},{:.0} {:.0}x{:.0}]", i + 1, b[0], b[1], b[2], b[3]);
                if !f.rejections.is_empty() {
                    writeln!(out, "{head}: not usable ({})", reasons(&f.rejections))?;
                } else if m.is_empty() {
                    writeln!(out, "{head}: unknown")?;
                } else {
                    for c in m {
                        let name = c.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
                        writeln!(
                            out,
                            "{head}: MATCH {}/{}{name} score {:.3} (threshold {:.3})",
                            c.list, c.subject, c.score, c.threshold
                        )?;
                    }
                }
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn embed_cmd(s: &ServiceConfig, images: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut p = open_pipeline(s)?;
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for path in images {
        let file = path.display().to_string();
        let faces = match decode_file(path, s.max_pixels).and_then(|img| p.faces(&img, None)) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                failed = true;
                continue;
            }
        };
        if faces.is_empty() {
            writeln!(out, "{}", json!({"file": file, "faces": 0}))?;
        }
        for f in faces {
            let d = f.detection;
            writeln!(
                out,
                "{}",
                json!({"file": file, "bbox": d.bbox, "score": d.score, "landmarks": d.landmarks, "embedding": f.embedding})
            )?;
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn eval_cmd(s: &ServiceConfig, threads_given: bool, faces: &Path, workers: usize) -> anyhow::Result<ExitCode> {
    let mut opts = s.pipeline_options();
    // Evaluation picks the labelled (centre) face among all candidates, as the reference does.
    opts.detector.score_threshold = opts.detector.score_threshold.min(0.6);
    // Parallelism comes from the workers unless --threads asks for more per model.
    if !threads_given || s.threads == 0 {
        opts.runtime.intra_threads = 1;
    }
    let set = eval::IdentificationSet::from_faces_dir(faces)?;
    let pairs = eval::read_pairs(&faces.join("pairs_lfw_view2.tsv"))?;
    let paths = set.all_paths();
    let bar = indicatif::ProgressBar::new(paths.len() as u64);
    let t0 = std::time::Instant::now();
    let embs = eval::embed_centre_faces(&s.models_dir(), &opts, &paths, workers, &|n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let by_path: BTreeMap<PathBuf, Option<Vec<f32>>> = paths.iter().cloned().zip(embs).collect();
    let by_rel: BTreeMap<String, Option<Vec<f32>>> = by_path
        .iter()
        .filter_map(|(p, e)| Some((p.strip_prefix(faces).ok()?.to_string_lossy().into_owned(), e.clone())))
        .collect();
    let m = facewatch::manifest::Manifest::load(&s.models_dir())?;
    let ver = eval::verification(&pairs, &by_rel);
    let ident =
        eval::identification(&set, &by_path, &s.index_factory, &m.embedder.name, m.embedder.embedding_size as u32)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "images": paths.len(),
            "seconds": secs,
            "images_per_second": paths.len() as f64 / secs,
            "verification": ver,
            "identification": ident,
        }))?
    );
    Ok(ExitCode::SUCCESS)
}
