//! OpenSSH server messages: who tried to log in, from where, and whether it worked.
//!
//! sshd writes prose, not key=value, yet brute-force detection needs the source address and
//! the user as fields. This reads the few sentence shapes OpenSSH uses for logins and
//! connections ("Failed password for invalid user X from IP port N", "Invalid user X from IP",
//! "Accepted publickey for X from IP", "Connection closed by authenticating user X IP port N",
//! pam_unix's "rhost=IP user=X") into `source.ip`, `source.port`, `user.name`,
//! `event.action` and `event.outcome`, leaving the message untouched.

use std::net::IpAddr;

use crate::event::Event;

/// Fills login fields from an sshd message, where the message has them. One pass over the
/// words, remembering the two before: this runs on every sshd line, so it allocates nothing.
pub fn enrich(message: &str, event: &mut Event) {
    let mut before_previous = "";
    let mut previous = "";
    let mut address_found = false;
    let mut port_expected = false;
    let mut user: Option<&str> = None;
    for (word, may_be_address) in words(message) {
        if port_expected {
            if previous == "port" {
                event.core.source_port = word.trim_end_matches([':', ',']).parse().ok();
                port_expected = false;
            } else if word != "port" {
                port_expected = false;
            }
        }
        if !address_found && may_be_address {
            if let Some((text, address)) = as_address(word) {
                // `::ffff:192.0.2.1` is an IPv4 client on a dual-stack socket: store it as IPv4
                // so the same attacker has one address across sources. Otherwise the text as
                // written is already the canonical form, and copying it is cheaper than
                // formatting the address again.
                let canonical = address.to_canonical();
                event.core.source_ip = Some(if canonical == address {
                    text.into()
                } else {
                    compact_str::ToCompactString::to_compact_string(&canonical)
                });
                address_found = true;
                port_expected = true;
            }
        }
        if user.is_none() {
            user = user_in(before_previous, previous, word, may_be_address);
        }
        if address_found && !port_expected && user.is_some() {
            // Nothing later in the message can change what was found.
            break;
        }
        before_previous = previous;
        previous = word;
    }
    if let Some(user) = user {
        event.core.user_name = Some(user.into());
    }
    if let Some((action, outcome)) = classify(message) {
        event.core.event_action = Some(action.into());
        if let Some(outcome) = outcome {
            event.core.event_outcome = Some(outcome.into());
        }
    }
}

/// The words of `text` between spaces (runs of spaces count as one), like
/// `text.split(' ').filter(|word| !word.is_empty())`, each with whether it holds a `.` or a
/// `:` (only such a word can be an address). One pass by hand: `split` with a `char` searches
/// with `memchr`, whose setup costs more than scanning a short word, and this runs over every
/// word of every sshd line.
fn words(text: &str) -> impl Iterator<Item = (&str, bool)> {
    let mut position = 0;
    std::iter::from_fn(move || {
        let bytes = text.as_bytes();
        while bytes.get(position) == Some(&b' ') {
            position += 1;
        }
        let start = position;
        let mut may_be_address = false;
        while let Some(byte) = bytes.get(position) {
            match byte {
                b' ' => break,
                b'.' | b':' => may_be_address = true,
                _ => {}
            }
            position += 1;
        }
        // Both ends are at a space or at the end of the text: character boundaries.
        (position > start).then(|| (&text[start..position], may_be_address))
    })
}

/// A word that is an IP address (bare, in parentheses, or as `rhost=`): its text and value.
fn as_address(word: &str) -> Option<(&str, IpAddr)> {
    // Cheap check first: most words are not addresses, and parsing every one shows in profiles.
    if !word.bytes().any(|byte| byte == b'.' || byte == b':') {
        return None;
    }
    let candidate = word.strip_prefix("rhost=").unwrap_or(word);
    let candidate = candidate.trim_matches(|c| matches!(c, '(' | ')' | ',' | ';' | '[' | ']'));
    let candidate = candidate
        .strip_suffix(':')
        .filter(|rest| rest.parse::<IpAddr>().is_ok())
        .unwrap_or(candidate);
    candidate
        .parse::<IpAddr>()
        .ok()
        .map(|address| (candidate, address))
}

/// The user name in the shapes OpenSSH and pam_unix write it, judged at `word` with the two
/// words before it.
fn user_in<'a>(
    before_previous: &'a str,
    previous: &'a str,
    word: &'a str,
    may_be_address: bool,
) -> Option<&'a str> {
    if let Some(user) = word.strip_prefix("user=").filter(|user| !user.is_empty()) {
        return Some(user);
    }
    // "Failed password for X from", "Accepted publickey for X from"
    if word == "from" && before_previous == "for" {
        return Some(previous);
    }
    // "Invalid user X from", "invalid user X 1.2.3.4", "authenticating user X 1.2.3.4"
    if matches!(previous, "user" | "User")
        && word != "from"
        && !(may_be_address && as_address(word).is_some())
    {
        return Some(word);
    }
    None
}

fn classify(message: &str) -> Option<(&'static str, Option<&'static str>)> {
    // Most sshd sentences say what they are in their first words: a prefix test is cheap. The
    // few that do not (pam_unix, "User x from y not allowed", "fatal: Timeout …") are searched
    // for only when no prefix matched.
    const PREFIXES: &[(&str, &str, Option<&str>)] = &[
        ("Accepted ", "ssh_login", Some("success")),
        ("Failed ", "ssh_login", Some("failure")),
        ("Invalid user ", "ssh_login", Some("failure")),
        ("Connection closed by", "ssh_disconnect", None),
        ("Disconnected from", "ssh_disconnect", None),
        ("Connection reset by", "ssh_disconnect", None),
        ("Unable to negotiate", "ssh_negotiation", Some("failure")),
        ("refused connect", "ssh_connection", Some("failure")),
    ];
    const INSIDE: &[(&str, &str, Option<&str>)] = &[
        ("authentication failure", "ssh_login", Some("failure")),
        ("not allowed because", "ssh_login", Some("failure")),
        (
            "maximum authentication attempts exceeded",
            "ssh_login",
            Some("failure"),
        ),
        (
            "Timeout before authentication",
            "ssh_timeout",
            Some("failure"),
        ),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, ..)| message.starts_with(prefix))
        .or_else(|| INSIDE.iter().find(|(needle, ..)| message.contains(needle)))
        .map(|(_, action, outcome)| (*action, *outcome))
}

/// The word loop before it was made single-pass with an early exit, kept as the reference the
/// new one must match.
#[cfg(test)]
mod reference {
    use crate::event::Event;

    pub fn enrich_reference(message: &str, event: &mut Event) {
        let mut before_previous = "";
        let mut previous = "";
        let mut address_found = false;
        let mut port_expected = false;
        let mut user: Option<&str> = None;
        for word in message.split(' ').filter(|word| !word.is_empty()) {
            if port_expected {
                if previous == "port" {
                    event.core.source_port = word.trim_end_matches([':', ',']).parse().ok();
                    port_expected = false;
                } else if word != "port" {
                    port_expected = false;
                }
            }
            if !address_found {
                if let Some((text, address)) = super::as_address(word) {
                    // `::ffff:192.0.2.1` is an IPv4 client on a dual-stack socket: store it as IPv4
                    // so the same attacker has one address across sources. Otherwise the text as
                    // written is already the canonical form, and copying it is cheaper than
                    // formatting the address again.
                    let canonical = address.to_canonical();
                    event.core.source_ip = Some(if canonical == address {
                        text.into()
                    } else {
                        compact_str::ToCompactString::to_compact_string(&canonical)
                    });
                    address_found = true;
                    port_expected = true;
                }
            }
            if user.is_none() {
                user = user_in_reference(before_previous, previous, word);
            }
            before_previous = previous;
            previous = word;
        }
        if let Some(user) = user {
            event.core.user_name = Some(user.into());
        }
        if let Some((action, outcome)) = super::classify(message) {
            event.core.event_action = Some(action.into());
            if let Some(outcome) = outcome {
                event.core.event_outcome = Some(outcome.into());
            }
        }
    }
    fn user_in_reference<'a>(
        before_previous: &'a str,
        previous: &'a str,
        word: &'a str,
    ) -> Option<&'a str> {
        if let Some(user) = word.strip_prefix("user=").filter(|user| !user.is_empty()) {
            return Some(user);
        }
        // "Failed password for X from", "Accepted publickey for X from"
        if word == "from" && before_previous == "for" {
            return Some(previous);
        }
        // "Invalid user X from", "invalid user X 1.2.3.4", "authenticating user X 1.2.3.4"
        if matches!(previous, "user" | "User")
            && word != "from"
            && super::as_address(word).is_none()
        {
            return Some(word);
        }
        None
    }
}

#[cfg(test)]
mod differential {
    use super::*;
    use crate::parse::{new_event, ParseContext};
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "Failed",
        "Accepted",
        "password",
        "publickey",
        "for",
        "invalid",
        "user",
        "User",
        "from",
        "port",
        "ssh2",
        "root",
        "admin",
        "192.0.2.1",
        "::ffff:192.0.2.7",
        "2001:db8::1",
        "(10.0.0.1)",
        "rhost=5.33.63.160",
        "user=workshop",
        "user=",
        "22",
        "4022:",
        "x.y",
        "fatal:",
        "Connection",
        "closed",
        "by",
        "authenticating",
        "[preauth]",
        "",
        "1.2.3.4:",
    ];

    fn check(message: &str) {
        let context = ParseContext::new("test");
        let mut ours = new_event(message.as_bytes(), &context, 1);
        let mut reference = ours.clone();
        enrich(message, &mut ours);
        reference::enrich_reference(message, &mut reference);
        assert_eq!(ours, reference, "{message:?}");
    }

    proptest! {
        #[test]
        fn single_pass_matches_the_reference(
            picks in proptest::collection::vec((0..WORDS.len(), 1..3usize), 0..14)
        ) {
            let message: String = picks
                .iter()
                .map(|(word, spaces)| format!("{}{}", WORDS[*word], " ".repeat(*spaces)))
                .collect();
            check(&message);
        }

        #[test]
        fn single_pass_matches_the_reference_on_any_text(message in "\\PC{0,60}") {
            check(&message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{new_event, ParseContext};

    fn enriched(message: &str) -> Event {
        let context = ParseContext::new("test");
        let mut event = new_event(message.as_bytes(), &context, 1);
        enrich(message, &mut event);
        event
    }

    #[test]
    fn words_split_like_str_split_without_empty_words() {
        for text in [
            "",
            " ",
            "one",
            "  two  spaces  ",
            "Failed password for invalid user  from 1.2.3.4 port 22 ssh2",
            "tab\tis part of a word, ü too ",
            "rhost=1.2.3.4 fatal: a.b ::1",
        ] {
            let expected: Vec<(&str, bool)> = text
                .split(' ')
                .filter(|word| !word.is_empty())
                .map(|word| (word, word.contains(['.', ':'])))
                .collect();
            assert_eq!(words(text).collect::<Vec<_>>(), expected, "{text:?}");
        }
    }

    #[test]
    fn failed_password_for_invalid_user() {
        let event =
            enriched("Failed password for invalid user root from 192.168.1.2 port 51182 ssh2");
        assert_eq!(event.core.source_ip.as_deref(), Some("192.168.1.2"));
        assert_eq!(event.core.source_port, Some(51182));
        assert_eq!(event.core.user_name.as_deref(), Some("root"));
        assert_eq!(event.core.event_outcome.as_deref(), Some("failure"));
    }

    #[test]
    fn pam_and_accepted_shapes() {
        let event = enriched("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.33.63.160 user=workshop");
        assert_eq!(
            (
                event.core.source_ip.as_deref(),
                event.core.user_name.as_deref()
            ),
            (Some("5.33.63.160"), Some("workshop"))
        );
        let event = enriched(
            "Accepted publickey for deploy from 2001:db8::1 port 4022 ssh2: ED25519 SHA256:x",
        );
        assert_eq!(event.core.user_name.as_deref(), Some("deploy"));
        assert_eq!(event.core.source_ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(event.core.event_outcome.as_deref(), Some("success"));
    }
}
