//! x86-64 system call numbers to names, for the calls detection rules and analysts ask about
//! (process start, file and permission changes, network, modules, privilege). Not the whole
//! table: an unknown number just leaves `SYSCALL` unset and `syscall` numeric.

/// (number, name), sorted by number for the binary search.
const X86_64: &[(u32, &str)] = &[
    (0, "read"),
    (1, "write"),
    (2, "open"),
    (3, "close"),
    (4, "stat"),
    (5, "fstat"),
    (6, "lstat"),
    (7, "poll"),
    (8, "lseek"),
    (9, "mmap"),
    (10, "mprotect"),
    (11, "munmap"),
    (12, "brk"),
    (13, "rt_sigaction"),
    (14, "rt_sigprocmask"),
    (16, "ioctl"),
    (21, "access"),
    (22, "pipe"),
    (23, "select"),
    (32, "dup"),
    (33, "dup2"),
    (39, "getpid"),
    (41, "socket"),
    (42, "connect"),
    (43, "accept"),
    (44, "sendto"),
    (45, "recvfrom"),
    (46, "sendmsg"),
    (47, "recvmsg"),
    (48, "shutdown"),
    (49, "bind"),
    (50, "listen"),
    (56, "clone"),
    (57, "fork"),
    (58, "vfork"),
    (59, "execve"),
    (60, "exit"),
    (61, "wait4"),
    (62, "kill"),
    (63, "uname"),
    (72, "fcntl"),
    (76, "truncate"),
    (77, "ftruncate"),
    (78, "getdents"),
    (79, "getcwd"),
    (80, "chdir"),
    (81, "fchdir"),
    (82, "rename"),
    (83, "mkdir"),
    (84, "rmdir"),
    (85, "creat"),
    (86, "link"),
    (87, "unlink"),
    (88, "symlink"),
    (89, "readlink"),
    (90, "chmod"),
    (91, "fchmod"),
    (92, "chown"),
    (93, "fchown"),
    (94, "lchown"),
    (95, "umask"),
    (99, "sysinfo"),
    (101, "ptrace"),
    (102, "getuid"),
    (103, "syslog"),
    (105, "setuid"),
    (106, "setgid"),
    (113, "setreuid"),
    (114, "setregid"),
    (117, "setresuid"),
    (119, "setresgid"),
    (133, "mknod"),
    (135, "personality"),
    (155, "pivot_root"),
    (157, "prctl"),
    (159, "adjtimex"),
    (161, "chroot"),
    (165, "mount"),
    (166, "umount2"),
    (169, "reboot"),
    (170, "sethostname"),
    (175, "init_module"),
    (176, "delete_module"),
    (188, "setxattr"),
    (189, "lsetxattr"),
    (190, "fsetxattr"),
    (200, "tkill"),
    (217, "getdents64"),
    (228, "clock_gettime"),
    (231, "exit_group"),
    (234, "tgkill"),
    (257, "openat"),
    (258, "mkdirat"),
    (259, "mknodat"),
    (260, "fchownat"),
    (263, "unlinkat"),
    (264, "renameat"),
    (265, "linkat"),
    (266, "symlinkat"),
    (268, "fchmodat"),
    (269, "faccessat"),
    (272, "unshare"),
    (288, "accept4"),
    (292, "dup3"),
    (293, "pipe2"),
    (298, "perf_event_open"),
    (308, "setns"),
    (313, "finit_module"),
    (316, "renameat2"),
    (319, "memfd_create"),
    (321, "bpf"),
    (322, "execveat"),
];

/// The name of x86-64 system call `number`, when the table has it.
pub(crate) fn x86_64_name(number: u32) -> Option<&'static str> {
    X86_64
        .binary_search_by_key(&number, |(known, _)| *known)
        .ok()
        .and_then(|index| X86_64.get(index))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_answers() {
        assert!(X86_64.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert_eq!(x86_64_name(59), Some("execve"));
        assert_eq!(x86_64_name(319), Some("memfd_create"));
        assert_eq!(x86_64_name(15), None);
    }
}
