//! The answer to an Elasticsearch `_bulk` request: one item per action, as Beats read it
//! (they look at each item's `status`). Made as it is sent, a frame of items at a time, from
//! the actions counted in runs: a request of a million actions (14 MB of `{"delete":{}}`
//! lines, a few kilobytes gzipped) would otherwise be answered from a 75 MB string built
//! after the request gave back its place, outside every bound the intake keeps.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};

const HEAD: &str = r#"{"took":0,"errors":false,"items":["#;
const TAIL: &str = "]}";
/// Items in one frame of the answer (~75 KB).
const ITEMS_PER_FRAME: usize = 1024;

/// The actions of a bulk request, in order, counted in runs of the same action.
#[derive(Debug, Default)]
pub(crate) struct BulkActions {
    runs: Vec<(&'static str, usize)>,
    count: usize,
}

impl BulkActions {
    pub(crate) fn push(&mut self, action: &'static str) {
        self.count += 1;
        match self.runs.last_mut() {
            Some((last, count)) if *last == action => *count += 1,
            _ => self.runs.push((action, 1)),
        }
    }

    /// How many actions.
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}

/// One item of the answer: the action created (deletes too: nothing is ever deleted here,
/// and an agent must not retry them).
fn item(action: &str) -> String {
    format!(r#"{{"{action}":{{"_index":"citysoc","_id":"","status":201,"result":"created"}}}}"#)
}

/// The answer's body.
pub(crate) struct BulkReply {
    runs: std::vec::IntoIter<(&'static str, usize)>,
    /// The run being written: its item and how many are left.
    current: Option<(String, usize)>,
    started: bool,
    finished: bool,
    /// Bytes not yet given out.
    remaining: u64,
}

impl BulkReply {
    pub(crate) fn new(actions: BulkActions) -> Self {
        let items: u64 = actions
            .runs
            .iter()
            .map(|(action, count)| item(action).len() as u64 * *count as u64)
            .sum();
        let commas = actions.count.saturating_sub(1) as u64;
        BulkReply {
            runs: actions.runs.into_iter(),
            current: None,
            started: false,
            finished: false,
            remaining: (HEAD.len() + TAIL.len()) as u64 + items + commas,
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
        } else {
            // Items were written before: the next one needs its comma.
            chunk.push(',');
        }
        let mut written = 0;
        let mut first_in_chunk = true;
        while written < ITEMS_PER_FRAME {
            let (text, left) = match &mut self.current {
                Some((text, left)) if *left > 0 => (text, left),
                _ => match self.runs.next() {
                    Some((action, count)) => {
                        self.current = Some((item(action), count));
                        continue;
                    }
                    None => break,
                },
            };
            if !first_in_chunk {
                chunk.push(',');
            }
            first_in_chunk = false;
            chunk.push_str(text);
            *left -= 1;
            written += 1;
        }
        let more = match &self.current {
            Some((_, left)) if *left > 0 => true,
            _ => self.runs.as_slice().iter().any(|(_, count)| *count > 0),
        };
        if first_in_chunk && chunk.ends_with(',') {
            // No item after the comma written for one.
            chunk.pop();
        }
        if !more {
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
