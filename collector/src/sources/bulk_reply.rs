//! The answer to an Elasticsearch `_bulk` request: one item per action, as Beats read it
//! (they look at each item's `status`). Made as it is sent, a frame of items at a time, from
//! the actions kept as one byte each: a request of a million actions (14 MB of
//! `{"delete":{}}` lines, a few kilobytes gzipped) would otherwise be answered from a 75 MB
//! string built after the request gave back its place, outside every bound the intake keeps.
//! A byte an action (at most 1 MB a request, while its peer reads the answer) whatever their
//! order: runs of the same action would cost 24 bytes a run, and alternating actions make a
//! run of each.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};

const HEAD: &str = r#"{"took":0,"errors":false,"items":["#;
const TAIL: &str = "]}";
/// Items in one frame of the answer (~75 KB).
const ITEMS_PER_FRAME: usize = 1024;
/// The bulk API's actions; an action is kept as its index here.
const ACTIONS: [&str; 4] = ["index", "create", "update", "delete"];

/// The bulk API's action named `name`, if it is one.
pub(crate) fn action_named(name: &str) -> Option<&'static str> {
    ACTIONS.into_iter().find(|action| *action == name)
}

/// The actions of a bulk request, in order.
#[derive(Debug, Default)]
pub(crate) struct BulkActions {
    codes: Vec<u8>,
}

impl BulkActions {
    /// Adds `action`, one of the bulk API's (`index` for anything else).
    pub(crate) fn push(&mut self, action: &str) {
        let code = ACTIONS
            .iter()
            .position(|known| *known == action)
            .unwrap_or(0);
        self.codes.push(code as u8);
    }

    /// How many actions.
    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }
}

/// One item of the answer: the action created (deletes too: nothing is ever deleted here,
/// and an agent must not retry them).
fn item(action: &str) -> String {
    format!(r#"{{"{action}":{{"_index":"citysoc","_id":"","status":201,"result":"created"}}}}"#)
}

/// The answer's body.
pub(crate) struct BulkReply {
    codes: Vec<u8>,
    /// The next action to write.
    next: usize,
    items: [String; 4],
    started: bool,
    finished: bool,
    /// Bytes not yet given out.
    remaining: u64,
}

impl BulkReply {
    pub(crate) fn new(actions: BulkActions) -> Self {
        let items = ACTIONS.map(item);
        let items_length: u64 = actions
            .codes
            .iter()
            .map(|code| items[usize::from(*code)].len() as u64)
            .sum();
        let commas = actions.codes.len().saturating_sub(1) as u64;
        BulkReply {
            codes: actions.codes,
            next: 0,
            items,
            started: false,
            finished: false,
            remaining: (HEAD.len() + TAIL.len()) as u64 + items_length + commas,
        }
    }

    /// The next frame's text; `None` once everything is out.
    fn next_chunk(&mut self) -> Option<String> {
        if self.finished {
            return None;
        }
        let mut chunk = String::new();
        if !self.started {
            self.started = true;
            chunk.push_str(HEAD);
        }
        let end = self.codes.len().min(self.next + ITEMS_PER_FRAME);
        for index in self.next..end {
            if index > 0 {
                chunk.push(',');
            }
            let code = self.codes.get(index).copied().unwrap_or_default();
            chunk.push_str(&self.items[usize::from(code) % ACTIONS.len()]);
        }
        self.next = end;
        if self.next == self.codes.len() {
            chunk.push_str(TAIL);
            self.finished = true;
        }
        Some(chunk)
    }
}

impl Body for BulkReply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        Poll::Ready(this.next_chunk().map(|chunk| {
            this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
            Ok(Frame::data(Bytes::from(chunk)))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn written(actions: &[&'static str]) -> (String, u64) {
        let mut runs = BulkActions::default();
        for action in actions {
            runs.push(action);
        }
        let mut reply = BulkReply::new(runs);
        let announced = reply.remaining;
        let mut text = String::new();
        while let Some(chunk) = reply.next_chunk() {
            text.push_str(&chunk);
        }
        assert!(reply.finished);
        (text, announced)
    }

    #[test]
    fn the_answer_is_elasticsearch_s_and_its_announced_length_exact() {
        let mut actions = vec!["create"; 2_500];
        actions.extend(["delete", "index", "index"]);
        actions.extend(vec!["create"; 1_023]);
        for actions in [
            &actions[..],
            &["index"],
            &[],
            &actions[..1_024],
            &actions[..1_025],
        ] {
            let (text, announced) = written(actions);
            assert_eq!(text.len() as u64, announced);
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
            let items = answer["items"].as_array().unwrap();
            assert_eq!(items.len(), actions.len());
            for (item, action) in items.iter().zip(actions) {
                assert_eq!(item[*action]["status"], 201, "{item}");
            }
            assert_eq!(answer["errors"], false);
        }
    }
}
