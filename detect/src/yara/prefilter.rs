//! Which rule files may be evaluated through the batch prefilter.
//!
//! Scanning a batch of targets concatenated into one buffer costs one yara-x scan instead of
//! one per target, and yara-x's fixed cost per scan dominates on log-sized inputs. The batch
//! scan only nominates candidates: every target overlapped by a match of any pattern is then
//! scanned alone, so alerts are exactly those of per-target scanning. That holds for a rule
//! when (1) it can only match a target that contains a match of one of its own patterns, and
//! (2) every pattern match inside a target is still found when the target sits in the
//! middle of a larger buffer. This module checks both on the rule's syntax, conservatively:
//! a file with any rule it cannot prove safe is scanned target by target.

use yara_x_parser::ast::{self, Expr, Quantifier, AST};

/// True when every rule of the source can go through the batch prefilter.
pub(crate) fn file_is_batch_safe(source: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(source) else {
        return false;
    };
    let tree = AST::from(text);
    if !tree.errors().is_empty() {
        return false;
    }
    let safe = tree.items().all(|item| match item {
        ast::Item::Import(_) => true,
        // Included text is not analysed here.
        ast::Item::Include(_) => false,
        ast::Item::Rule(rule) => rule_is_batch_safe(rule),
    });
    safe
}

/// The names of the rules of a batch-safe source that match exactly when one of their own
/// patterns matched (`any of them`, `1 of them`, `$a` in a rule with the one pattern `$a`, or
/// an `or` of bare patterns naming all of them). For those rules a batch scan settles which
/// targets they match without scanning the targets again: a match lying inside one target is
/// the target's own (`scanner` checks that no match crosses a target's edge). Empty for a
/// source that is not batch-safe.
pub(crate) fn any_pattern_rules(source: &[u8]) -> Vec<String> {
    if !file_is_batch_safe(source) {
        return Vec::new();
    }
    let Ok(text) = std::str::from_utf8(source) else {
        return Vec::new();
    };
    let tree = AST::from(text);
    tree.items()
        .filter_map(|item| match item {
            ast::Item::Rule(rule) if rule_is_any_pattern(rule) => {
                Some(rule.identifier.name.to_owned())
            }
            _ => None,
        })
        .collect()
}

fn rule_is_any_pattern(rule: &ast::Rule<'_>) -> bool {
    let Some(patterns) = &rule.patterns else {
        return false;
    };
    let mut named = Vec::new();
    if !any_pattern_condition(&rule.condition, &mut named) {
        return false;
    }
    // `them` (pushed as "$") names every pattern; bare identifiers must name them all.
    named.contains(&"$")
        || patterns
            .iter()
            .all(|pattern| named.contains(&pattern.identifier().name))
}

/// True when `expr` is an `or` of `any of them`/`1 of them` and bare unanchored patterns;
/// the patterns it names go to `named` (`them` as "$").
fn any_pattern_condition<'s>(expr: &Expr<'s>, named: &mut Vec<&'s str>) -> bool {
    match expr {
        Expr::PatternMatch(pattern) if pattern.anchor.is_none() => {
            named.push(pattern.identifier.name);
            true
        }
        Expr::Or(any) => any
            .operands()
            .all(|operand| any_pattern_condition(operand, named)),
        Expr::Of(of) => {
            let one = match &of.quantifier {
                Quantifier::Any { .. } => true,
                Quantifier::Expr(Expr::LiteralInteger(count)) => count.value == 1,
                _ => false,
            };
            let them = matches!(
                of.items,
                ast::OfItems::PatternSet(ast::PatternSet::Them { .. })
            );
            if one && them && of.anchor.is_none() {
                named.push("$");
                true
            } else {
                false
            }
        }
        _ => false,
    }
}

fn rule_is_batch_safe(rule: &ast::Rule<'_>) -> bool {
    // A global rule that fails on the batch would silence its whole namespace.
    if rule.flags.contains(ast::RuleFlags::Global) {
        return false;
    }
    let Some(patterns) = &rule.patterns else {
        return false;
    };
    !patterns.is_empty()
        && patterns.iter().all(pattern_is_position_independent)
        && only_local_constructs(&rule.condition)
        && requires_own_pattern(&rule.condition)
}

/// Regular expressions anchored to the start or end of the data (`^`, `$`) match a target
/// alone but not inside a batch. Text and hex patterns never depend on where the data ends.
fn pattern_is_position_independent(pattern: &ast::Pattern<'_>) -> bool {
    match pattern {
        ast::Pattern::Regexp(regexp) => !has_anchor(regexp.regexp.src),
        ast::Pattern::Text(_) | ast::Pattern::Hex(_) => true,
    }
}

/// True when the regexp source has `^` outside the start of a class, or an unescaped `$`
/// (also inside classes, where it would be harmless: conservative is fine).
fn has_anchor(source: &str) -> bool {
    let mut previous = None;
    let mut escaped = false;
    for character in source.chars() {
        if escaped {
            escaped = false;
            previous = Some('x');
            continue;
        }
        match character {
            '\\' => escaped = true,
            '$' => return true,
            '^' if previous != Some('[') => return true,
            _ => {}
        }
        previous = Some(character);
    }
    false
}

/// True when the condition only uses constructs whose value on the batch cannot change which
/// pattern matches yara-x records. `filesize`, offsets (`at`, `in`, `@a`, `!a`), functions
/// (`uint32(0)`), module fields, other rules and loops are refused: yara-x uses some of them
/// to skip searching patterns, which would hide a target's matches in a batch.
fn only_local_constructs(expr: &Expr<'_>) -> bool {
    let node_ok = match expr {
        Expr::True { .. }
        | Expr::False { .. }
        | Expr::LiteralInteger(_)
        | Expr::LiteralFloat(_)
        | Expr::LiteralString(_)
        | Expr::Not(_)
        | Expr::And(_)
        | Expr::Or(_)
        | Expr::Minus(_)
        | Expr::Add(_)
        | Expr::Sub(_)
        | Expr::Mul(_)
        | Expr::Div(_)
        | Expr::Mod(_)
        | Expr::Eq(_)
        | Expr::Ne(_)
        | Expr::Lt(_)
        | Expr::Gt(_)
        | Expr::Le(_)
        | Expr::Ge(_) => true,
        Expr::PatternMatch(pattern) => pattern.anchor.is_none(),
        Expr::PatternCount(count) => count.range.is_none(),
        Expr::Of(of) => {
            of.anchor.is_none()
                && quantifier_is_local(&of.quantifier)
                && match &of.items {
                    ast::OfItems::PatternSet(_) => true,
                    ast::OfItems::BoolExprTuple(items) => items.iter().all(only_local_constructs),
                }
        }
        _ => false,
    };
    node_ok && expr.children().all(only_local_constructs)
}

fn quantifier_is_local(quantifier: &Quantifier<'_>) -> bool {
    match quantifier {
        Quantifier::None { .. } | Quantifier::All { .. } | Quantifier::Any { .. } => true,
        Quantifier::Percentage(expr) | Quantifier::Expr(expr) => only_local_constructs(expr),
    }
}

/// True when the condition can only be true if one of the rule's patterns matched.
fn requires_own_pattern(expr: &Expr<'_>) -> bool {
    match expr {
        Expr::PatternMatch(pattern) => pattern.anchor.is_none(),
        Expr::And(all) => all.operands().any(requires_own_pattern),
        Expr::Or(any) => any.operands().all(requires_own_pattern),
        Expr::Of(of) => {
            matches!(of.items, ast::OfItems::PatternSet(_))
                && match &of.quantifier {
                    Quantifier::All { .. } | Quantifier::Any { .. } => true,
                    Quantifier::Expr(Expr::LiteralInteger(count))
                    | Quantifier::Percentage(Expr::LiteralInteger(count)) => count.value >= 1,
                    _ => false,
                }
        }
        // `#a > 0`, `#a >= 1`, `#a == 2`.
        Expr::Gt(compare) => {
            is_count(&compare.lhs) && literal(&compare.rhs).is_some_and(|value| value >= 0)
        }
        Expr::Ge(compare) | Expr::Eq(compare) => {
            is_count(&compare.lhs) && literal(&compare.rhs).is_some_and(|value| value >= 1)
        }
        _ => false,
    }
}

fn is_count(expr: &Expr<'_>) -> bool {
    matches!(expr, Expr::PatternCount(count) if count.range.is_none())
}

fn literal(expr: &Expr<'_>) -> Option<i64> {
    match expr {
        Expr::LiteralInteger(integer) if !integer.is_unsigned => Some(integer.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(source: &str) -> bool {
        file_is_batch_safe(source.as_bytes())
    }

    #[test]
    fn positive_pattern_conditions_are_safe() {
        assert!(safe(r#"rule a { strings: $a = "x" condition: $a }"#));
        assert!(safe(
            r#"rule a { strings: $a = "x" $b = /y[^z]+/ condition: any of them }"#
        ));
        assert!(safe(
            r#"rule a { strings: $a = "x" $b = "y" condition: ($a and not $b) or 2 of them }"#
        ));
        assert!(safe(r#"rule a { strings: $a = "x" condition: #a > 2 }"#));
        assert!(safe(
            r#"import "math" rule a { strings: $a = { 41 ?? 42 } condition: all of ($a*) }"#
        ));
    }

    #[test]
    fn conditions_that_can_hold_without_a_match_or_depend_on_the_buffer_are_not() {
        assert!(!safe(r#"rule a { strings: $a = "x" condition: not $a }"#));
        assert!(!safe(
            r#"rule a { strings: $a = "x" condition: $a or true }"#
        ));
        assert!(!safe(r#"rule a { condition: true }"#));
        assert!(!safe(
            r#"rule a { strings: $a = "x" condition: $a and filesize < 100 }"#
        ));
        assert!(!safe(r#"rule a { strings: $a = "x" condition: $a at 0 }"#));
        assert!(!safe(
            r#"rule a { strings: $a = "x" condition: $a and uint16(0) == 0x5a4d }"#
        ));
        assert!(!safe(
            r#"rule a { strings: $a = "x" condition: any of them in (0..10) }"#
        ));
        assert!(!safe(r#"rule a { strings: $a = /^GET / condition: $a }"#));
        assert!(!safe(r#"rule a { strings: $a = /end$/ condition: $a }"#));
        assert!(!safe(
            r#"global rule g { strings: $a = "x" condition: $a }"#
        ));
        assert!(!safe(
            r#"rule b { strings: $a = "x" condition: $a } rule c { strings: $a = "y" condition: $a and b }"#
        ));
        assert!(!safe("rule broken {"));
    }

    fn any_pattern(source: &str) -> Vec<String> {
        any_pattern_rules(source.as_bytes())
    }

    #[test]
    fn rules_that_match_on_any_own_pattern_are_recognised() {
        assert_eq!(
            any_pattern(r#"rule a { strings: $a = "x" $b = /y/ condition: any of them }"#),
            ["a"]
        );
        assert_eq!(
            any_pattern(r#"rule a { strings: $a = "x" $b = /y/ condition: 1 of them }"#),
            ["a"]
        );
        assert_eq!(
            any_pattern(r#"rule a { strings: $a = "x" condition: $a }"#),
            ["a"]
        );
        assert_eq!(
            any_pattern(r#"rule a { strings: $a = "x" $b = "y" condition: $a or $b }"#),
            ["a"]
        );
        // Conditions that need more than one match, or not every pattern, are not.
        for source in [
            r#"rule a { strings: $a = "x" $b = "y" condition: $a }"#,
            r#"rule a { strings: $a = "x" $b = "y" condition: $a and $b }"#,
            r#"rule a { strings: $a = "x" $b = "y" condition: 2 of them }"#,
            r#"rule a { strings: $a = "x" $b = "y" condition: all of them }"#,
            r#"rule a { strings: $a = "x" $b = "y" condition: any of ($a) }"#,
            r#"rule a { strings: $a = "x" condition: #a > 2 }"#,
            r#"rule a { strings: $a = "x" condition: $a or filesize < 10 }"#,
            r#"rule a { strings: $a = /^x/ condition: $a }"#,
        ] {
            assert!(any_pattern(source).is_empty(), "{source}");
        }
    }

    #[test]
    fn anchor_detection_ignores_escapes_and_negated_classes() {
        assert!(!has_anchor(r"\$_(GET|POST)\["));
        assert!(!has_anchor(r"[^'\x22]{1,64}"));
        assert!(has_anchor(r"^abc"));
        assert!(has_anchor(r"a|^b"));
        assert!(has_anchor(r"abc$"));
    }

    #[test]
    fn the_city_rules_are_all_safe() {
        let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/yara");
        let entries = std::fs::read_dir(directory)
            .map(|entries| entries.filter_map(Result::ok).collect::<Vec<_>>())
            .unwrap_or_default();
        assert!(entries.len() >= 10);
        for entry in entries {
            let source = std::fs::read(entry.path()).unwrap_or_default();
            assert!(
                file_is_batch_safe(&source),
                "{} is not batch-safe",
                entry.path().display()
            );
        }
    }
}
