//! EVTX. HELPER-OWNED: to be written.
use crate::error::CollectorError;
use crate::event::Event;
use crate::parse::ParseContext;

/// The 8-byte magic at the start of an EVTX file.
pub const EVTX_MAGIC: &[u8; 8] = b"ElfFile\0";

/// What reading an EVTX file produced.
#[derive(Debug, Default, Clone)]
pub struct EvtxSummary {
    /// Records turned into events.
    pub records: u64,
    /// Records or chunks that could not be read (each also became an unknown event).
    pub errors: u64,
}

/// Decodes a whole EVTX file into events.
pub fn decode_evtx(_bytes: Vec<u8>, _context: &ParseContext, _out: &mut Vec<Event>) -> Result<EvtxSummary, CollectorError> {
    Ok(EvtxSummary::default())
}
