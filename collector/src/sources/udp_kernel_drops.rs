//! Datagrams the kernel dropped for a UDP socket (its receive buffer was full), read from the
//! `drops` column of `/proc/self/net/udp{,6}`. Linux only; elsewhere nothing is known and
//! `None` is returned. Reading the running total every second costs nothing per datagram,
//! unlike SO_RXQ_OVFL, which needs `recvmsg` with control messages on every read.

use std::os::fd::AsRawFd;

/// The kernel's count of datagrams dropped for this socket since it was opened, when the
/// system exposes it.
pub fn udp_socket_kernel_drops(socket: &impl AsRawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    let inode = link
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .to_owned();
    ["/proc/self/net/udp", "/proc/self/net/udp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .find_map(|text| drops_of_inode(&text, &inode))
}

/// Finds the socket's line by inode (column 10) and returns its `drops` (the last column).
fn drops_of_inode(table: &str, inode: &str) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.get(9) == Some(&inode) {
            columns.last()?.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_drops_column_of_the_socket_line() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  123: 00000000:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 555 2 0000000000000000 17\n\
  124: 00000000:0203 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 556 2 0000000000000000 0\n";
        assert_eq!(drops_of_inode(table, "555"), Some(17));
        assert_eq!(drops_of_inode(table, "556"), Some(0));
        assert_eq!(drops_of_inode(table, "557"), None);
    }

    #[test]
    fn a_real_socket_whose_buffer_overflows_reports_kernel_drops() {
        if !std::path::Path::new("/proc/self/net/udp").exists() {
            println!("NOT RUN: no /proc/self/net/udp on this system");
            return;
        }
        let receiver =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        receiver.set_recv_buffer_size(4096).unwrap();
        receiver
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        let receiver: std::net::UdpSocket = receiver.into();
        assert_eq!(udp_socket_kernel_drops(&receiver), Some(0));
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = receiver.local_addr().unwrap();
        for _ in 0..200 {
            sender.send_to(&[b'x'; 1000], target).unwrap();
        }
        let drops = udp_socket_kernel_drops(&receiver).unwrap();
        assert!(drops > 0, "a 4 KiB buffer cannot hold 200 KB of datagrams");
        assert!(drops < 200);
    }
}
