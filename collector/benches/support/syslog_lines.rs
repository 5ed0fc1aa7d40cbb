//! The syslog lines the parse bench and `examples/parse_cpu.rs` share: ~200 bytes each, shaped
//! like the real samples in `tests/data` (crowdsec's sshd and iptables logs, RFC 5424's own
//! example with structured data), with numbers varied per record so nothing is cached.

/// sshd accepting a key (BSD syslog), as `tests/data/.../sshd-success-logs`, with the key
/// fingerprint real sshd writes: ~200 bytes, login fields read from the prose.
pub fn rfc3164_sshd(index: usize) -> String {
    format!(
        "<86>Nov 22 10:{:02}:{:02} web-{:02}.ubnd-quan1.hcm.gov.vn sshd[{}]: Accepted publickey for nguyenvan{} from 203.113.{}.{} port {} ssh2: RSA SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3t{:04}",
        index % 60, (index * 7) % 60, index % 17, 20_000 + index, index % 50, index % 256, (index * 3) % 256, 40_000 + index, index % 10_000
    )
}

/// A Linux kernel netfilter drop (BSD syslog), as `tests/data/.../iptables-logs`: the message is
/// key=value, so it is parsed at both levels (about 20 payload fields).
pub fn rfc3164_firewall(index: usize) -> String {
    format!(
        "<4>Nov 22 10:{:02}:{:02} fw-q1-{:02} kernel: [{}.{:06}] IN=eth0 OUT= MAC=00:08:a2:0c:1f:12:00:c8:8b:e2:d6:87:08:00 SRC=195.54.{}.{} DST=10.20.{}.{} LEN=40 TOS=0x00 PREC=0x00 TTL=245 ID={} PROTO=TCP SPT={} DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0",
        index % 60, (index * 7) % 60, index % 5, 50_028_442 + index, (index * 7919) % 1_000_000, index % 256, (index * 3) % 256, (index * 7) % 256, index % 256, 30_000 + index, 40_000 + index
    )
}

/// IETF syslog with one structured-data element (as RFC 5424's own examples), ~200 bytes.
pub fn rfc5424(index: usize) -> String {
    format!(
        "<165>1 2026-11-22T10:{:02}:{:02}.{:03}+07:00 portal-{:02}.dvc.hcm.gov.vn nginx {} ID{} [meta sequenceId=\"{}\" zone=\"thu-duc\"] GET /dich-vu-cong/ho-so/tra-cuu?ma-ho-so=000.00.{:02}.H29-{} 200 {} ms",
        index % 60, (index * 7) % 60, index % 1000, index % 13, 1000 + index, index % 90, index, index % 24, 261_122_000 + index, 20 + index % 900
    )
}

/// key=value under pfSense's `filterlog` tag (other firewalls and relays send it so), as in
/// the collector peer bench's corpus, where it is a third of the lines.
pub fn rfc3164_filterlog_kv(index: usize) -> String {
    format!(
        "<133>Nov 22 10:{:02}:{:02} fw-edge-{:02} filterlog[{}]: action=block rule={} proto=TCP src=45.84.{}.{} dst=10.27.{}.{} spt={} dpt=8080 in=wan0 out=lan1 len={} ttl=57 flags=S policy=edge-default zone=untrust",
        index % 60, (index * 7) % 60, index % 8, 20_000 + index, 1_000_000 + index % 300, index % 256, (index * 3) % 256, (index * 7) % 256, index % 256, 30_000 + index, 40 + index % 1400
    )
}
