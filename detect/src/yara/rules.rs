//! Loading YARA rule files into one compiled rule set, with the metadata alerts need.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::details::DetailsTemplate;
use super::prefilter;
use crate::{DetectError, Level};

/// A rule file that could not be used, or a warning yara-x gave about one. Loading goes on
/// without the file; the caller shows these (`citysoc rules test`, the server log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLoadProblem {
    /// The file.
    pub path: PathBuf,
    /// yara-x's message with its code and position (`error[E009]: unknown identifier …
    /// --> file:3:5`), or the I/O error.
    pub message: String,
    /// True for a warning: the file's rules were loaded anyway.
    pub warning: bool,
}

impl fmt::Display for RuleLoadProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.warning { "warning" } else { "error" };
        write!(
            formatter,
            "{kind} in `{}`: {}",
            self.path.display(),
            self.message
        )
    }
}

/// What an alert needs to know about a YARA rule, read once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YaraRuleInfo {
    /// The alert's rule id: the `id` meta, else `namespace:name`.
    pub rule_id: String,
    /// `namespace:name`, what yara-x calls the rule.
    pub qualified_name: String,
    /// The alert title: the `description` meta, else the rule name.
    pub title: String,
    /// The `level` (or `severity`) meta with Sigma's names; `medium` when absent.
    pub level: Level,
    /// YARA tags and `attack` meta entries, normalized (`attack.t1505.003`); every alert of
    /// the rule shares them.
    pub tags: Arc<[String]>,
    /// The file the rule came from.
    pub file: PathBuf,
    /// True when the rule goes through the batch prefilter; false when its file has a rule
    /// that must see each target alone.
    pub prefiltered: bool,
    /// True when the rule matches exactly when one of its own patterns does (`any of them`
    /// and the like): the scanner then reads its matches from the batch scan instead of
    /// scanning the target again.
    pub(crate) any_pattern: bool,
    /// The rule's alert details with their constant values set.
    pub(crate) details: DetailsTemplate,
}

/// The compiled city YARA rules: one `yara_x::Rules` shared by every worker (wrap the set in
/// an `Arc`), plus each rule's metadata.
///
/// A worker holds an `Arc<YaraRuleSet>` and creates its own
/// [`YaraScanner`](super::YaraScanner) borrowing it; yara-x scanners borrow their rules, so the
/// scanner lives in the worker's loop while the `Arc` keeps the rules alive. On a rule reload
/// the worker finishes its batch, drops the scanner and creates one on the new set.
pub struct YaraRuleSet {
    /// The rules the batch prefilter can handle (normally all of them).
    pub(crate) rules: yara_x::Rules,
    /// The rules that must see each target alone (conditions on `filesize`, offsets, anchors,
    /// negations …), when there are any.
    pub(crate) per_target: Option<yara_x::Rules>,
    /// Keyed by namespace, then rule name, as yara-x reports matches.
    info: HashMap<String, HashMap<String, YaraRuleInfo>>,
    files: Vec<PathBuf>,
}

impl fmt::Debug for YaraRuleSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("YaraRuleSet")
            .field("rules", &self.len())
            .field("files", &self.files)
            .finish()
    }
}

impl YaraRuleSet {
    /// Compiles every `.yar`/`.yara` file under `paths` (files are taken as given, directories
    /// are walked recursively in name order). Each file gets its own namespace, named after
    /// the file, so rule names only need to be unique within a file.
    ///
    /// A file that does not compile (or cannot be read) is left out and reported in the
    /// returned problems with yara-x's message; the other files load. Only a path that does
    /// not exist or a directory that cannot be listed is an error.
    pub fn load(paths: &[PathBuf]) -> Result<(YaraRuleSet, Vec<RuleLoadProblem>), DetectError> {
        let mut files = Vec::new();
        for path in paths {
            collect_rule_files(path, true, &mut files)?;
        }
        let mut problems = Vec::new();
        let mut sources = Vec::with_capacity(files.len());
        for file in files {
            match std::fs::read(&file) {
                Ok(bytes) => sources.push((file, bytes)),
                Err(error) => problems.push(RuleLoadProblem {
                    path: file,
                    message: format!("could not read the file: {error}"),
                    warning: false,
                }),
            }
        }
        let (set, mut compile_problems) = Self::compile(&sources);
        problems.append(&mut compile_problems);
        Ok((set, problems))
    }

    /// Compiles rule sources given in memory as (origin, text) pairs; the origin plays the role
    /// of the file path. Same behaviour as [`YaraRuleSet::load`].
    pub fn from_sources(sources: &[(&str, &str)]) -> (YaraRuleSet, Vec<RuleLoadProblem>) {
        let sources: Vec<(PathBuf, Vec<u8>)> = sources
            .iter()
            .map(|(origin, text)| (PathBuf::from(origin), text.as_bytes().to_vec()))
            .collect();
        Self::compile(&sources)
    }

    fn compile(sources: &[(PathBuf, Vec<u8>)]) -> (YaraRuleSet, Vec<RuleLoadProblem>) {
        let mut problems = Vec::new();
        // First each file alone: a file with an error must not take its neighbours down, and
        // yara-x may keep the rules of a failing source that came before its error, so
        // failing files are found here and never given to the shared compiler.
        let good: Vec<&(PathBuf, Vec<u8>)> = sources
            .iter()
            .filter(|(path, bytes)| match check_alone(path, bytes) {
                Ok(warnings) => {
                    problems.extend(warnings.into_iter().map(|message| RuleLoadProblem {
                        path: path.clone(),
                        message,
                        warning: true,
                    }));
                    true
                }
                Err(message) => {
                    problems.push(RuleLoadProblem {
                        path: path.clone(),
                        message,
                        warning: false,
                    });
                    false
                }
            })
            .collect();

        // Files whose every rule the batch prefilter can handle go into one rule set, the
        // others into a second one scanned target by target (see `prefilter`).
        let mut prefiltered = Group {
            prefiltered: true,
            ..Group::default()
        };
        let mut per_target = Group::default();
        let mut used = BTreeSet::new();
        let mut files = Vec::new();
        for (path, bytes) in good {
            let group = if prefilter::file_is_batch_safe(bytes) {
                &mut prefiltered
            } else {
                &mut per_target
            };
            let namespace = unique_namespace(path, &mut used);
            group.compiler.new_namespace(&namespace);
            let origin = path.display().to_string();
            let source = yara_x::SourceCode::from(bytes.as_slice()).with_origin(origin);
            // Checked alone above; this can still fail on what only the whole set shows.
            if let Err(error) = group.compiler.add_source(source) {
                problems.push(RuleLoadProblem {
                    path: path.clone(),
                    message: error.to_string(),
                    warning: false,
                });
                continue;
            }
            group.files += 1;
            if group.prefiltered {
                for name in prefilter::any_pattern_rules(bytes) {
                    group.any_pattern.insert((namespace.clone(), name));
                }
            }
            group.namespaces.insert(namespace, path.clone());
            files.push(path.clone());
        }
        let mut info = HashMap::new();
        let rules = prefiltered.build(&mut info);
        let per_target = if per_target.files > 0 {
            Some(per_target.build(&mut info))
        } else {
            None
        };
        (
            YaraRuleSet {
                rules,
                per_target,
                info,
                files,
            },
            problems,
        )
    }

    /// How many rules were compiled.
    pub fn len(&self) -> usize {
        self.info.values().map(HashMap::len).sum()
    }

    /// True when no rule compiled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The files whose rules are in the set.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The metadata of every rule, in no particular order.
    pub fn rules(&self) -> impl Iterator<Item = &YaraRuleInfo> {
        self.info.values().flat_map(HashMap::values)
    }

    /// The metadata of one rule by namespace and name.
    pub fn rule_info(&self, namespace: &str, name: &str) -> Option<&YaraRuleInfo> {
        // Two borrowed lookups: a map keyed by (String, String) would need both owned (two
        // allocations per matching rule, on the alert path).
        self.info.get(namespace)?.get(name)
    }

    /// The compiled yara-x rules that go through the batch prefilter (all of the city's), for
    /// scanning outside citysoc's scanner: the benchmark compares against plain yara-x.
    pub fn yara_rules(&self) -> &yara_x::Rules {
        &self.rules
    }

    /// How many rules must see each target alone (see [`YaraRuleInfo::prefiltered`]).
    pub fn per_target_rules(&self) -> usize {
        self.rules().filter(|info| !info.prefiltered).count()
    }
}

/// One compiler and what went into it.
struct Group<'a> {
    compiler: yara_x::Compiler<'a>,
    namespaces: HashMap<String, PathBuf>,
    files: usize,
    /// The group goes through the batch prefilter.
    prefiltered: bool,
    /// (namespace, rule) of the rules settled by a batch scan (`prefilter::any_pattern_rules`).
    any_pattern: HashSet<(String, String)>,
}

impl Default for Group<'_> {
    fn default() -> Self {
        Group {
            compiler: new_compiler(),
            namespaces: HashMap::new(),
            files: 0,
            prefiltered: false,
            any_pattern: HashSet::new(),
        }
    }
}

impl Group<'_> {
    fn build(self, info: &mut HashMap<String, HashMap<String, YaraRuleInfo>>) -> yara_x::Rules {
        let rules = self.compiler.build();
        for ((namespace, name), mut rule) in rule_infos(&rules, &self.namespaces, self.prefiltered)
        {
            rule.any_pattern = self
                .any_pattern
                .contains(&(namespace.clone(), name.clone()));
            info.entry(namespace).or_default().insert(name, rule);
        }
        rules
    }
}

fn new_compiler<'a>() -> yara_x::Compiler<'a> {
    let mut compiler = yara_x::Compiler::new();
    compiler.colorize_errors(false);
    compiler
}

/// Compiles one file alone: its warnings when it compiles, its first error when not.
fn check_alone(path: &Path, bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut compiler = new_compiler();
    let source = yara_x::SourceCode::from(bytes).with_origin(path.display().to_string());
    match compiler.add_source(source) {
        Ok(_) => Ok(compiler
            .warnings()
            .iter()
            .map(ToString::to_string)
            .collect()),
        Err(error) => {
            let all: Vec<String> = compiler.errors().iter().map(ToString::to_string).collect();
            if all.len() > 1 {
                Err(all.join("\n"))
            } else {
                Err(error.to_string())
            }
        }
    }
}

/// The namespace of a rule file: its stem made into a YARA identifier, with a number added
/// when two files share a stem.
fn unique_namespace(path: &Path, used: &mut BTreeSet<String>) -> String {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy())
        .unwrap_or_default();
    let mut base: String = stem
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '_' {
                character
            } else {
                '_'
            }
        })
        .collect();
    if base.is_empty() || base.starts_with(|character: char| character.is_ascii_digit()) {
        base.insert_str(0, "rules_");
    }
    let mut candidate = base.clone();
    let mut counter = 2;
    while used.contains(&candidate) {
        candidate = format!("{base}_{counter}");
        counter += 1;
    }
    used.insert(candidate.clone());
    candidate
}

fn is_rule_file(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            extension.eq_ignore_ascii_case("yar") || extension.eq_ignore_ascii_case("yara")
        })
}

/// Adds the rule files at `path`: the path itself when it is a file named on the command line
/// (whatever its extension), the `.yar`/`.yara` files below it when it is a directory.
fn collect_rule_files(path: &Path, given: bool, out: &mut Vec<PathBuf>) -> Result<(), DetectError> {
    let read_error = |source| DetectError::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_dir() {
        if given || is_rule_file(path) {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    entries.sort();
    for entry in entries {
        collect_rule_files(&entry, false, out)?;
    }
    Ok(())
}

/// Reads every compiled rule's metadata into what alerts need.
fn rule_infos(
    rules: &yara_x::Rules,
    files: &HashMap<String, PathBuf>,
    prefiltered: bool,
) -> HashMap<(String, String), YaraRuleInfo> {
    rules
        .iter()
        .map(|rule| {
            let namespace = rule.namespace().to_owned();
            let name = rule.identifier().to_owned();
            let qualified_name = format!("{namespace}:{name}");
            let mut rule_id = None;
            let mut title = None;
            let mut level = None;
            let mut tags: Vec<String> = rule
                .tags()
                .map(|tag| normalize_tag(tag.identifier()))
                .collect();
            for (key, value) in rule.metadata() {
                let yara_x::MetaValue::String(text) = value else {
                    continue;
                };
                match key.to_ascii_lowercase().as_str() {
                    "id" if rule_id.is_none() => rule_id = Some(text.to_owned()),
                    "description" if title.is_none() => title = Some(text.to_owned()),
                    "level" | "severity" if level.is_none() => {
                        level = Some(Level::from_sigma(text))
                    }
                    "attack" | "tags" | "mitre_attack" => tags.extend(meta_tags(text)),
                    _ => {}
                }
            }
            let mut seen = BTreeSet::new();
            tags.retain(|tag| seen.insert(tag.clone()));
            let file = files.get(&namespace).cloned().unwrap_or_default();
            let details = DetailsTemplate::new(&qualified_name, &file.display().to_string());
            let info = YaraRuleInfo {
                rule_id: rule_id.unwrap_or_else(|| qualified_name.clone()),
                qualified_name,
                title: title.unwrap_or_else(|| name.clone()),
                level: level.unwrap_or(Level::Medium),
                tags: tags.into(),
                file,
                prefiltered,
                any_pattern: false,
                details,
            };
            ((namespace, name), info)
        })
        .collect()
}

/// A YARA tag as an alert tag. YARA tags cannot hold dots, so `attack_t1505_003` stands for
/// `attack.t1505.003` and `attack_credential_access` for `attack.credential-access`.
fn normalize_tag(tag: &str) -> String {
    let lower = tag.to_ascii_lowercase();
    match lower.strip_prefix("attack_") {
        Some(rest)
            if rest.starts_with('t') && rest.chars().nth(1).is_some_and(|c| c.is_ascii_digit()) =>
        {
            format!("attack.{}", rest.replace('_', "."))
        }
        Some(rest) => format!("attack.{}", rest.replace('_', "-")),
        None => lower,
    }
}

/// The tags in an `attack` meta value: comma- or space-separated, with or without the
/// `attack.` prefix (`T1059.001`, `attack.execution`).
fn meta_tags(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split([',', ' ', ';'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let lower = part.to_ascii_lowercase();
            if lower.starts_with("attack.") {
                lower
            } else {
                format!("attack.{lower}")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalized() {
        assert_eq!(normalize_tag("attack_t1505_003"), "attack.t1505.003");
        assert_eq!(
            normalize_tag("attack_credential_access"),
            "attack.credential-access"
        );
        assert_eq!(normalize_tag("WebShell"), "webshell");
        let tags: Vec<String> = meta_tags("attack.execution, T1059.001;attack.t1105").collect();
        assert_eq!(
            tags,
            ["attack.execution", "attack.t1059.001", "attack.t1105"]
        );
    }

    #[test]
    fn namespaces_are_identifiers_and_unique() {
        let mut used = BTreeSet::new();
        assert_eq!(
            unique_namespace(Path::new("a/web-shell.yar"), &mut used),
            "web_shell"
        );
        assert_eq!(
            unique_namespace(Path::new("b/web-shell.yar"), &mut used),
            "web_shell_2"
        );
        assert_eq!(
            unique_namespace(Path::new("1st.yara"), &mut used),
            "rules_1st"
        );
    }
}
