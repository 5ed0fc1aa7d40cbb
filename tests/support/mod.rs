//! What the `citysoc` binary's integration tests share.

use std::process::Child;

/// A server or collector process of a test: killed (SIGKILL) and reaped when dropped, so a
/// test that fails half-way does not leave it running, holding its port and data directory,
/// after the test binary has exited.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Kills the process now (SIGKILL, as a crash or `kill -9` would) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.kill();
        }
    }
}
