//! The query language, from the outside: query strings → the typed [`Query`] both stores
//! translate, and malformed queries → the byte position and message users see.

use chrono::{DateTime, TimeZone, Utc};
use citysoc_index::query::{Bound, Condition, FieldMatch, Range, Target};
use citysoc_index::{parse, IndexError, Query};
use proptest::prelude::*;

fn on(target: Target, condition: Condition) -> Query {
    Query::Match(FieldMatch { target, condition })
}

fn field(name: &'static str, condition: Condition) -> Query {
    on(Target::Field(name), condition)
}

fn original(path: &str, condition: Condition) -> Query {
    on(Target::Original(path.to_owned()), condition)
}

/// A word or phrase on the default text fields.
fn text(tokens: &[&str]) -> Query {
    on(Target::DefaultText, phrase(tokens))
}

fn phrase(tokens: &[&str]) -> Condition {
    Condition::Phrase(tokens.iter().map(|token| token.to_string()).collect())
}

fn exact(value: &str) -> Condition {
    Condition::Exact(value.to_owned())
}

fn wildcard(glob: &str) -> Condition {
    Condition::Wildcard(glob.to_owned())
}

fn numbers(lower: Bound<u64>, upper: Bound<u64>) -> Condition {
    Condition::NumberRange(Range { lower, upper })
}

fn number(value: u64) -> Condition {
    Condition::NumberRange(Range::exactly(value))
}

fn times(lower: Bound<DateTime<Utc>>, upper: Bound<DateTime<Utc>>) -> Condition {
    Condition::TimeRange(Range { lower, upper })
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn and(children: Vec<Query>) -> Query {
    Query::And(children)
}

fn or(children: Vec<Query>) -> Query {
    Query::Or(children)
}

fn not(query: Query) -> Query {
    Query::Not(Box::new(query))
}

use Bound::{Excluded, Included, Unbounded};

#[test]
fn well_formed_queries_resolve_to_these_queries() {
    let cases: Vec<(&str, Query)> = vec![
        // Every event.
        ("", Query::All),
        ("  \t\n", Query::All),
        ("*", Query::All),
        // Words and phrases on the default text fields.
        (
            "failed password",
            and(vec![text(&["failed"]), text(&["password"])]),
        ),
        (
            "  failed\tpassword\n",
            and(vec![text(&["failed"]), text(&["password"])]),
        ),
        ("10.0.0.5", text(&["10", "0", "0", "5"])),
        ("Thủ-Đức", text(&["thu", "duc"])),
        ("Đà", text(&["da"])),
        ("(failed)", text(&["failed"])),
        ("\"Failed password\"", text(&["failed", "password"])),
        (r#""say \"hi\" \\ there""#, text(&["say", "hi", "there"])),
        (
            "and or not",
            and(vec![text(&["and"]), text(&["or"]), text(&["not"])]),
        ),
        ("pass*", on(Target::DefaultText, wildcard("pass*"))),
        // Keyword fields: whole value, folded.
        ("source.ip:10.0.0.5", field("source.ip", exact("10.0.0.5"))),
        ("source.ip:fe80::1", field("source.ip", exact("fe80::1"))),
        ("host.name:WEB-01", field("host.name", exact("web-01"))),
        ("log.level:ERROR", field("log.level", exact("error"))),
        (
            "user.name:\"Nguyễn Văn A\"",
            field("user.name", exact("nguyen van a")),
        ),
        ("user.name:adm*", field("user.name", wildcard("adm*"))),
        ("host.name:web-0?", field("host.name", wildcard("web-0?"))),
        ("user.name:*", field("user.name", Condition::Exists)),
        (r"user.name:a\*b", field("user.name", exact("a*b"))),
        ("user.name:\"adm*\"", field("user.name", exact("adm*"))),
        (
            r"process.executable:C\:\\Windows\\cmd.exe",
            field("process.executable", exact(r"c:\windows\cmd.exe")),
        ),
        (
            r#"process.executable:"C:\\Windows\\cmd.exe""#,
            field("process.executable", exact(r"c:\windows\cmd.exe")),
        ),
        (
            r#"process.executable:"C:\Windows\cmd.exe""#,
            field("process.executable", exact(r"c:\windows\cmd.exe")),
        ),
        // Original fields.
        ("fields.EventID:4625", original("EventID", exact("4625"))),
        (
            r"fields.winlog.event_data.Image:*\\cmd.exe",
            original("winlog.event_data.Image", wildcard(r"*\cmd.exe")),
        ),
        // Text fields.
        ("message:Password", field("message", phrase(&["password"]))),
        ("message:pass*", field("message", wildcard("pass*"))),
        (
            "message:\"invalid user\"",
            field("message", phrase(&["invalid", "user"])),
        ),
        (
            "url.original:\"http://example.com/a?b=1\"",
            field(
                "url.original",
                phrase(&["http", "example", "com", "a", "b", "1"]),
            ),
        ),
        // Numbers.
        ("source.port:22", field("source.port", number(22))),
        ("source.port:\"22\"", field("source.port", number(22))),
        ("source.port:*", field("source.port", Condition::Exists)),
        (
            "source.port:[1 TO 1023]",
            field("source.port", numbers(Included(1), Included(1023))),
        ),
        (
            "source.port:{1 TO 1023}",
            field("source.port", numbers(Excluded(1), Excluded(1023))),
        ),
        (
            "http.response.status_code:[500 TO 599}",
            field(
                "http.response.status_code",
                numbers(Included(500), Excluded(599)),
            ),
        ),
        (
            "source.port:[1024 TO *]",
            field("source.port", numbers(Included(1024), Unbounded)),
        ),
        (
            "process.pid:>=4",
            field("process.pid", numbers(Included(4), Unbounded)),
        ),
        (
            "process.pid:>4",
            field("process.pid", numbers(Excluded(4), Unbounded)),
        ),
        (
            "process.pid:<10",
            field("process.pid", numbers(Unbounded, Excluded(10))),
        ),
        (
            "process.pid:<=10",
            field("process.pid", numbers(Unbounded, Included(10))),
        ),
        // Time: a bare day is that whole day in UTC.
        (
            "timestamp:2026-11-22",
            field("timestamp", times(Included(at(22, 0)), Excluded(at(23, 0)))),
        ),
        (
            "timestamp:2026-11-22T10:00:00Z",
            field(
                "timestamp",
                Condition::TimeRange(Range::exactly(at(22, 10))),
            ),
        ),
        (
            "received_at:2026-11-22T10:00:00+07:00",
            field(
                "received_at",
                Condition::TimeRange(Range::exactly(at(22, 3))),
            ),
        ),
        (
            "timestamp:[2026-11-01 TO 2026-11-02]",
            field("timestamp", times(Included(at(1, 0)), Excluded(at(3, 0)))),
        ),
        (
            "timestamp:[2026-11-01 TO 2026-11-02T12:00:00Z]",
            field("timestamp", times(Included(at(1, 0)), Included(at(2, 12)))),
        ),
        (
            "timestamp:{2026-11-01 TO 2026-11-03}",
            field("timestamp", times(Included(at(2, 0)), Excluded(at(3, 0)))),
        ),
        (
            "timestamp:<=2026-11-22",
            field("timestamp", times(Unbounded, Excluded(at(23, 0)))),
        ),
        (
            "timestamp:>2026-11-22",
            field("timestamp", times(Included(at(23, 0)), Unbounded)),
        ),
        // Boolean structure: NOT > AND > OR, flattened.
        (
            "a AND b OR c",
            or(vec![and(vec![text(&["a"]), text(&["b"])]), text(&["c"])]),
        ),
        (
            "a OR b c",
            or(vec![text(&["a"]), and(vec![text(&["b"]), text(&["c"])])]),
        ),
        (
            "a AND (b OR c) NOT d",
            and(vec![
                text(&["a"]),
                or(vec![text(&["b"]), text(&["c"])]),
                not(text(&["d"])),
            ]),
        ),
        ("-e +f", and(vec![not(text(&["e"])), text(&["f"])])),
        ("NOT a", not(text(&["a"]))),
        ("NOT NOT a", text(&["a"])),
        ("-a -b", and(vec![not(text(&["a"])), not(text(&["b"]))])),
        ("a OR NOT b", or(vec![text(&["a"]), not(text(&["b"]))])),
        (
            "a && b || !c",
            or(vec![
                and(vec![text(&["a"]), text(&["b"])]),
                not(text(&["c"])),
            ]),
        ),
        (
            "((a b) (c d))",
            and(vec![text(&["a"]), text(&["b"]), text(&["c"]), text(&["d"])]),
        ),
        (
            "(a OR b) OR (c OR d)",
            or(vec![text(&["a"]), text(&["b"]), text(&["c"]), text(&["d"])]),
        ),
        ("-(a OR b)", not(or(vec![text(&["a"]), text(&["b"])]))),
        ("* AND a", text(&["a"])),
        ("a OR *", Query::All),
        (
            "-source.ip:10.0.0.1",
            not(field("source.ip", exact("10.0.0.1"))),
        ),
        (
            "destination.port:>=1024 AND destination.port:<=65535",
            and(vec![
                field("destination.port", numbers(Included(1024), Unbounded)),
                field("destination.port", numbers(Unbounded, Included(65535))),
            ]),
        ),
        // _exists_ and field groups.
        ("_exists_:user.name", field("user.name", Condition::Exists)),
        (
            "_exists_:fields.EventID",
            original("EventID", Condition::Exists),
        ),
        (
            "user.name:(root OR admin)",
            or(vec![
                field("user.name", exact("root")),
                field("user.name", exact("admin")),
            ]),
        ),
        (
            "user.name:(root -admin)",
            and(vec![
                field("user.name", exact("root")),
                not(field("user.name", exact("admin"))),
            ]),
        ),
        (
            "source.port:(22 OR [8000 TO 8999])",
            or(vec![
                field("source.port", number(22)),
                field("source.port", numbers(Included(8000), Included(8999))),
            ]),
        ),
        (
            "process.command_line:(powershell AND enc*)",
            and(vec![
                field("process.command_line", phrase(&["powershell"])),
                field("process.command_line", wildcard("enc*")),
            ]),
        ),
    ];
    assert!(cases.len() >= 40);
    for (text, expected) in cases {
        match parse(text) {
            Ok(query) => assert_eq!(query, expected, "{text:?}"),
            Err(error) => panic!("{text:?}: {error}"),
        }
    }
}

#[test]
fn malformed_queries_say_where_and_what() {
    let deep = format!("{}a{}", "(".repeat(33), ")".repeat(33));
    let many = vec!["a"; 1025].join(" ");
    let cases: Vec<(&str, usize, &str)> = vec![
        (
            "EventID:4625",
            0,
            "unknown field \"EventID\"; did you mean fields.EventID?",
        ),
        ("-source.pi:1", 1, "did you mean source.ip"),
        ("_exists_:nope", 9, "unknown field \"nope\""),
        ("fields.:x", 0, "`fields.` needs"),
        ("a AND", 2, "`AND` needs a term after it"),
        ("a OR )", 2, "`OR` needs a term after it"),
        ("NOT", 0, "`NOT` needs a term after it"),
        ("AND a", 0, "`AND` needs a term before it"),
        ("a AND OR b", 6, "expected a term after `AND`, found `OR`"),
        ("Đà Nẵng AND", 12, "`AND` needs a term after it"),
        ("(a", 0, "unclosed `(`"),
        ("(a (b)", 0, "unclosed `(`"),
        ("a)", 1, "unmatched `)`"),
        ("()", 0, "empty parentheses"),
        ("\"abc", 0, "unterminated quote"),
        ("a \"b", 2, "unterminated quote"),
        ("\"a b\"~2", 5, "`~`"),
        (",", 0, "no letters or digits"),
        ("failed ,", 7, "no letters or digits"),
        ("a - b", 2, "`-` must be followed directly by a term"),
        ("user.name:", 10, "expected a value after `user.name:`"),
        ("user.name: root", 10, "expected a value after `user.name:`"),
        ("user.name:\"\"", 10, "empty value for user.name"),
        (
            "source.port:abc",
            12,
            "source.port is a number field: \"abc\"",
        ),
        ("process.pid:99999999999999999999999", 12, "too large"),
        (
            "source.port:22*",
            12,
            "wildcards do not work on source.port",
        ),
        ("timestamp:2026-13-01", 10, "not a date"),
        ("timestamp:2026-11-22T10:00:00", 10, "has no time zone"),
        ("timestamp:[2026-11-01 TO yesterday]", 25, "\"yesterday\""),
        (
            "user.name:[a TO b]",
            10,
            "ranges work on number and time fields: timestamp",
        ),
        ("message:>5", 8, "ranges work on number and time fields"),
        ("source.port:[10 TO 1]", 12, "the range is empty"),
        ("source.port:{5 TO 5]", 12, "the range is empty"),
        (
            "source.port:[1 TO]",
            17,
            "expected the upper end of the range",
        ),
        ("source.port:[1 5]", 15, "expected `TO`"),
        ("source.port:[1 TO 5", 19, "expected `]` or `}`"),
        (
            "message:foo-bar*",
            8,
            "wildcards in text fields match one word",
        ),
        (r"user.name:a\*b*", 10, "mixes wildcards"),
        (
            "user.name:(host.name:x)",
            11,
            "a field name inside `user.name:( … )`",
        ),
        ("_exists_:(a b)", 0, "`_exists_:` takes one field name"),
        (">5", 0, "a comparison needs a field"),
        ("[1 TO 5]", 0, "a range needs a field"),
        (&deep, 32, "too deeply nested"),
        (&many, 2048, "too many terms"),
    ];
    assert!(cases.len() >= 20);
    for (text, position, fragment) in cases {
        match parse(text) {
            Err(IndexError::Query {
                position: got,
                message,
            }) => {
                assert_eq!(got, position, "{text:?}: {message}");
                assert!(
                    message.contains(fragment),
                    "{text:?}: {message:?} lacks {fragment:?}"
                );
            }
            other => panic!("{text:?}: expected a query error, got {other:?}"),
        }
    }
}

#[test]
fn limits_are_inclusive() {
    let deep = format!("{}a{}", "(".repeat(32), ")".repeat(32));
    assert_eq!(parse(&deep).ok(), Some(text(&["a"])));
    let many = vec!["a"; 1024].join(" OR ");
    assert!(parse(&many).is_ok());
}

#[test]
fn the_error_text_carries_the_position() {
    let error = parse("source.pi:1").err().map(|error| error.to_string());
    assert_eq!(
        error.as_deref(),
        Some(
            "query error at position 0: unknown field \"source.pi\"; did you mean source.ip or \
             fields.source.pi?"
        )
    );
}

/// Whatever `parse` says about `text`, an error's position is inside it, on a character.
fn check_position(text: &str) -> Result<(), TestCaseError> {
    if let Err(IndexError::Query { position, message }) = parse(text) {
        prop_assert!(position <= text.len(), "{text:?}: {position} {message}");
        prop_assert!(text.is_char_boundary(position), "{text:?}: {position}");
        prop_assert!(!message.is_empty());
    }
    Ok(())
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z][a-zA-Z0-9]{0,8}".prop_filter("an operator", |word| {
            !matches!(word.as_str(), "AND" | "OR" | "NOT")
        }),
        prop_oneof![Just("Thủ"), Just("Đức"), Just("Quận"), Just("Nguyễn")].prop_map(String::from),
    ]
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        word(),
        proptest::collection::vec(word(), 1..4)
            .prop_map(|words| format!("\"{}\"", words.join(" "))),
        ("[a-z0-9]{1,8}", proptest::bool::ANY)
            .prop_map(|(value, star)| format!("user.name:{value}{}", if star { "*" } else { "" })),
        (0u64..70_000).prop_map(|port| format!("source.port:{port}")),
        (0u64..70_000, 0u64..70_000)
            .prop_map(|(a, b)| { format!("destination.port:[{} TO {}]", a.min(b), a.max(b)) }),
        (
            1u32..=28,
            prop_oneof![Just(">"), Just(">="), Just("<"), Just("<=")]
        )
            .prop_map(|(day, operator)| format!("timestamp:{operator}2026-11-{day:02}")),
        "[0-9]{1,5}".prop_map(|id| format!("fields.EventID:{id}")),
        prop_oneof![Just("user.name"), Just("host.name"), Just("fields.Image")]
            .prop_map(|name| format!("_exists_:{name}")),
        proptest::collection::vec("[a-z]{1,6}", 1..3)
            .prop_map(|words| format!("message:\"{}\"", words.join(" "))),
        proptest::collection::vec("[a-z]{1,6}", 1..4)
            .prop_map(|names| format!("user.name:({})", names.join(" OR "))),
        Just("*".to_owned()),
    ]
}

fn well_formed() -> impl Strategy<Value = String> {
    leaf().prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop_oneof![
                    Just(" AND "),
                    Just(" OR "),
                    Just(" "),
                    Just(" && "),
                    Just(" || ")
                ],
                inner.clone()
            )
                .prop_map(|(a, operator, b)| format!("{a}{operator}{b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("NOT {a}")),
            inner.clone().prop_map(|a| format!("-({a})")),
            inner.clone().prop_map(|a| format!("+({a})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_string_parses_or_fails_cleanly(text in any::<String>()) {
        check_position(&text)?;
    }

    #[test]
    fn query_like_strings_parse_or_fail_cleanly(
        text in r#"[()"\\:*?\[\]{}<>=!+\-&|~^ \ta-zA-Z0-9._ủĐ]{0,80}|(AND|OR|NOT|TO|source\.port:|user\.name:|timestamp:|_exists_:|\(|\)|"| )*"#
    ) {
        check_position(&text)?;
    }

    #[test]
    fn deep_parentheses_never_overflow(
        depth in prop_oneof![0usize..40, 0usize..5_000],
        closed in proptest::bool::ANY,
        prefix in prop_oneof![Just(""), Just("NOT "), Just("-"), Just("user.name:")],
    ) {
        let text = format!(
            "{}a{}",
            format!("{prefix}(").repeat(depth),
            if closed { ")".repeat(depth) } else { String::new() }
        );
        check_position(&text)?;
        // A field group inside a field group is an error of its own.
        let nested_groups = prefix == "user.name:" && depth > 1;
        prop_assert_eq!(
            parse(&text).is_ok(),
            depth <= 32 && (closed || depth == 0) && !nested_groups
        );
    }

    #[test]
    fn generated_queries_parse(text in well_formed()) {
        let parsed = parse(&text);
        prop_assert!(parsed.is_ok(), "{:?}: {:?}", text, parsed);
    }
}

#[test]
fn long_operator_chains_do_not_recurse() {
    let nots = format!("{}a", "NOT ".repeat(100_000));
    assert_eq!(parse(&nots).ok(), Some(text(&["a"])));
    let minus = format!("{}a", "-".repeat(100_001));
    assert_eq!(parse(&minus).ok(), Some(not(text(&["a"]))));
}
