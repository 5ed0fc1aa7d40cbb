// citysoc YARA rules: Cobalt Strike beacon artifacts visible in logs (named pipes reported by
// Sysmon, default stagers and lateral-movement command lines).

rule cobalt_strike_artifacts : c2 cobalt_strike
{
    meta:
        id = "citysoc-yara-cobalt-strike"
        description = "Cobalt Strike default named pipes, PowerShell stager or psexec_psh service command"
        level = "critical"
        attack = "attack.command-and-control, attack.t1071, attack.execution, attack.t1059.001, attack.lateral-movement, attack.t1021.002"
        author = "citysoc SOC"
    strings:
        // Default pipe names of beacon and its post-exploitation jobs.
        $pipe_msse = /\\MSSE-\d{1,5}-server\b/ nocase
        $pipe_postex = /\\postex_(ssh_)?[0-9a-f]{4}\b/ nocase
        $pipe_status = /\\status_[0-9a-f]{2}\b/
        $pipe_msagent = /\\msagent_[0-9a-f]{2}\b/
        // PowerShell stager: gzip-compressed base64 shellcode loaded from memory.
        $ps_stager = /New-Object\s+IO\.MemoryStream\s*\(\s*,\s*\[Convert\]::FromBase64String\s*\([^)]{0,200}\)\s*\)[^\r\n]{0,200}IO\.Compression\.GzipStream/ nocase
        // Service command written by psexec_psh.
        $psexec_psh = /%COMSPEC%\s+\/b\s+\/c\s+start\s+\/b\s+\/min\s+powershell(\.exe)?\s+-nop\s+-w\s+hidden\s+-e/ nocase
    condition:
        any of them
}
