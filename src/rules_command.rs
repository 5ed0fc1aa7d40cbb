//! `citysoc rules check` and `citysoc rules test`: what a rule author runs before committing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use std::sync::Arc;

use citysoc_detect::intel::LoadOptions;
use citysoc_detect::samples::{
    read_sample_file, run_case, sample_files, CaseDetector, CaseOutcome,
};
use citysoc_detect::sigma::mapping::FieldMappings;
use citysoc_detect::{IntelMatcher, IntelStore};
use citysoc_detect::{SigmaEngine, SigmaOptions};
use serde::Serialize;

/// `citysoc rules …`.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Load rules and report every one that fails, with path, rule id and reason.
    Check(CheckArgs),
    /// Run every rule's sample cases (expected alert or no alert).
    Test(TestArgs),
}

/// Arguments of `citysoc rules check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// One JSON object: {loaded, failed, errors: [{path, rule_id, reason}]}.
    #[arg(long)]
    json: bool,
    /// Rule files or directories (SigmaHQ format).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Arguments of `citysoc rules test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The rules directory (with `sigma/`, `samples/`, `mappings/`, `placeholders.yml`).
    #[arg(default_value = "rules")]
    path: PathBuf,
    /// One JSON line per case instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct CheckReport<'a> {
    loaded: usize,
    correlations: usize,
    failed: usize,
    errors: Vec<CheckError<'a>>,
}

#[derive(Debug, Serialize)]
struct CheckError<'a> {
    path: String,
    rule_id: Option<&'a str>,
    reason: &'a str,
}

/// Runs `citysoc rules …`.
pub fn run(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Check(args) => check(args),
        RulesCommand::Test(args) => test(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let (_, report) = SigmaEngine::load(&args.paths, SigmaOptions::default())?;
    let output = CheckReport {
        loaded: report.rules,
        correlations: report.correlations,
        failed: report.problems.len(),
        errors: report
            .problems
            .iter()
            .map(|problem| CheckError {
                path: problem.path.display().to_string(),
                rule_id: problem.rule_id.as_deref(),
                reason: &problem.reason,
            })
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&output)?);
    } else {
        println!(
            "{} files: {} detection rules and {} correlations loaded, {} failed",
            report.files, report.rules, report.correlations, output.failed
        );
        for error in &output.errors {
            println!(
                "  {} [{}]: {}",
                error.path,
                error.rule_id.unwrap_or("-"),
                error.reason
            );
        }
    }
    if output.failed > 0 {
        bail!("{} rule(s) failed to load", output.failed);
    }
    Ok(())
}

fn sigma_options(rules: &Path) -> anyhow::Result<SigmaOptions> {
    let mut options = SigmaOptions {
        mappings: FieldMappings::load_dir(&rules.join("mappings"))?,
        ..SigmaOptions::default()
    };
    let placeholders = rules.join("placeholders.yml");
    if placeholders.exists() {
        options.placeholders = citysoc_detect::detector::read_placeholders(&placeholders)?;
    }
    Ok(options)
}

/// One threat-intel list as a case detector: rule id `intel:<list>`.
struct IntelCase {
    matcher: IntelMatcher,
    rule_id: String,
}

impl IntelCase {
    fn open(list: &Path) -> anyhow::Result<Self> {
        let store = IntelStore::open([list.to_owned()], LoadOptions::default())?;
        let stem = list
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(IntelCase {
            matcher: IntelMatcher::new(Arc::new(store)),
            rule_id: format!("intel:{stem}"),
        })
    }
}

impl CaseDetector for IntelCase {
    fn detect(&mut self, event: &citysoc_collector::Event) -> Vec<citysoc_detect::Alert> {
        self.matcher.match_event(event)
    }

    fn rule_ids(&self) -> Vec<String> {
        vec![self.rule_id.clone()]
    }
}

fn test(args: TestArgs) -> anyhow::Result<()> {
    let rules = &args.path;
    let samples = sample_files(&rules.join("samples"))
        .with_context(|| format!("cannot list samples in {}", rules.display()))?;
    if samples.is_empty() {
        bail!("no sample files under {}", rules.join("samples").display());
    }
    let options = sigma_options(rules)?;
    let mut outcomes: Vec<CaseOutcome> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for sample in &samples {
        let file = match read_sample_file(sample) {
            Ok(file) => file,
            Err(error) => {
                problems.push(error.to_string());
                continue;
            }
        };
        let rule_path = rules.join(&file.rule);
        if file.rule.starts_with("intel/") {
            for case in &file.cases {
                let mut detector = match IntelCase::open(&rule_path) {
                    Ok(detector) => detector,
                    Err(error) => {
                        problems.push(format!("{}: {error}", rule_path.display()));
                        break;
                    }
                };
                match run_case(sample, &file, case, &mut detector) {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(error) => problems.push(error.to_string()),
                }
            }
            continue;
        }
        if !file.rule.starts_with("sigma/") {
            // YARA samples run with the YARA scanner.
            continue;
        }
        for case in &file.cases {
            // A fresh engine per case: correlation windows must not leak between cases.
            let (mut engine, report) =
                SigmaEngine::load(std::slice::from_ref(&rule_path), options.clone())?;
            if let Some(problem) = report.problems.first() {
                problems.push(format!(
                    "{}: rule did not load: {}",
                    rule_path.display(),
                    problem.reason
                ));
                break;
            }
            match run_case(sample, &file, case, &mut engine) {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => problems.push(error.to_string()),
            }
        }
    }
    let failed: Vec<&CaseOutcome> = outcomes.iter().filter(|outcome| !outcome.passed).collect();
    if args.json {
        for outcome in &outcomes {
            println!("{}", serde_json::to_string(outcome)?);
        }
    } else {
        for outcome in &outcomes {
            let mark = if outcome.passed { "ok  " } else { "FAIL" };
            println!(
                "{mark} {} — {} (expect {:?}, {} matching alerts, {} events{})",
                outcome.rule,
                outcome.case,
                outcome.expect,
                outcome.matching_alerts,
                outcome.events,
                if outcome.unknown_events > 0 {
                    format!(", {} unknown", outcome.unknown_events)
                } else {
                    String::new()
                }
            );
        }
    }
    for problem in &problems {
        eprintln!("problem: {problem}");
    }
    eprintln!(
        "rules test: {} passed, {} failed",
        outcomes.len() - failed.len(),
        failed.len() + problems.len()
    );
    if !failed.is_empty() || !problems.is_empty() {
        bail!(
            "{} case(s) failed, {} problem(s)",
            failed.len(),
            problems.len()
        );
    }
    Ok(())
}
