//! Loading the detection stage (Sigma, exceptions, intel, YARA) from the command line, shared
//! by `citysoc hunt` and `citysoc import`, and running it on one event.

use std::path::PathBuf;

use anyhow::Context;
use citysoc_collector::Event;
use citysoc_detect::{Alert, Detector, DetectorConfig, YaraConfig, YaraRuleSet, YaraScanner};

/// The rule options both commands take.
#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    /// Sigma rule files or directories (repeat for several; e.g. a SigmaHQ pack and rules/sigma).
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
    /// YARA rule files or directories (repeatable); scanned over the raw record and the
    /// payload fields (command lines, URLs, decoded base64, attachments).
    #[arg(long = "yara")]
    pub yara: Vec<PathBuf>,
    /// Threat-intel lists (CSV or MISP JSON files, or directories of them; repeatable).
    #[arg(long = "intel")]
    pub intel: Vec<PathBuf>,
    /// Field mappings directory.
    #[arg(long, default_value = "rules/mappings")]
    pub mappings: PathBuf,
    /// Placeholder lists for `|expand`.
    #[arg(long, default_value = "rules/placeholders.yml")]
    pub placeholders: PathBuf,
    /// Exceptions directory.
    #[arg(long, default_value = "rules/exceptions")]
    pub exceptions: PathBuf,
}

impl RuleArgs {
    /// Whether any rules were named.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.yara.is_empty() && self.intel.is_empty()
    }
}

/// The rules `import` and `server` run when none are named: the city's own, where they are.
const DEFAULT_RULES: [(&str, RuleKind); 3] = [
    ("rules/sigma", RuleKind::Sigma),
    ("rules/yara", RuleKind::Yara),
    ("rules/intel", RuleKind::Intel),
];

#[derive(Debug, Clone, Copy)]
enum RuleKind {
    Sigma,
    Yara,
    Intel,
}

/// Names the bundled rules in `rules/` (where they exist) when none were named, saying so on
/// stderr as `citysoc <command>: …`.
pub fn use_default_rules(rules: &mut RuleArgs, command: &str) {
    for (path, kind) in DEFAULT_RULES {
        if !std::path::Path::new(path).is_dir() {
            continue;
        }
        let list = match kind {
            RuleKind::Sigma => &mut rules.rules,
            RuleKind::Yara => &mut rules.yara,
            RuleKind::Intel => &mut rules.intel,
        };
        list.push(PathBuf::from(path));
    }
    if rules.is_empty() {
        eprintln!(
            "citysoc {command}: no rules named and no rules/ folder here: storing without detection"
        );
    } else {
        eprintln!("citysoc {command}: using the bundled rules in rules/ (name others with --rules/--yara/--intel)");
    }
}

/// The loaded rules: the Sigma/intel detector and the compiled YARA rules.
pub struct LoadedRules {
    /// Sigma, correlations, exceptions, intel.
    pub detector: Detector,
    /// Compiled YARA rules, if any were named.
    pub yara: Option<YaraRuleSet>,
}

/// Loads the rules, reporting counts and every rule that failed on stderr as `command: …`.
pub fn load(args: &RuleArgs, command: &str) -> anyhow::Result<LoadedRules> {
    let config = DetectorConfig {
        sigma_paths: args.rules.clone(),
        mappings_dir: Some(args.mappings.clone()),
        placeholders_file: Some(args.placeholders.clone()),
        exceptions_dir: Some(args.exceptions.clone()),
        intel_paths: args.intel.clone(),
    };
    let (detector, report) =
        Detector::build(&config, chrono::Utc::now()).context("cannot load the rules")?;
    eprintln!(
        "citysoc {command}: {} detection rules and {} correlations loaded, {} failed to load",
        report.rules,
        report.correlations,
        report.problems.len()
    );
    for problem in report.problems.iter().take(20) {
        eprintln!(
            "  {} [{}]: {}",
            problem.path.display(),
            problem.rule_id.as_deref().unwrap_or("-"),
            problem.reason
        );
    }
    let yara = if args.yara.is_empty() {
        None
    } else {
        let (rules, problems) =
            YaraRuleSet::load(&args.yara).context("cannot load the YARA rules")?;
        eprintln!(
            "citysoc {command}: YARA rules loaded, {} problem(s)",
            problems.len()
        );
        for problem in &problems {
            eprintln!("  {}: {}", problem.path.display(), problem.message);
        }
        Some(rules)
    };
    Ok(LoadedRules { detector, yara })
}

/// A YARA scanner over the loaded YARA rules, if any (one per worker).
pub fn yara_scanner(yara: Option<&YaraRuleSet>) -> Option<YaraScanner<'_>> {
    yara.map(|rules| YaraScanner::new(rules, &YaraConfig::default()))
}

/// Runs Sigma, intel and YARA on one event; YARA hits go through the exceptions too.
pub fn detect(
    detector: &mut Detector,
    scanner: Option<&mut YaraScanner<'_>>,
    event: &Event,
) -> Vec<Alert> {
    let mut raised = detector.process(event);
    if let Some(scanner) = scanner {
        let mut yara_alerts = scanner.scan_event(event);
        detector.apply_exceptions(&mut yara_alerts, event);
        raised.extend(yara_alerts);
    }
    raised
}
