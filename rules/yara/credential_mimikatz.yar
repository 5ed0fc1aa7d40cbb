// citysoc YARA rules: Mimikatz and its command vocabulary on command lines and in scripts.

rule credential_mimikatz_commands : credential_access mimikatz
{
    meta:
        id = "citysoc-yara-credential-mimikatz"
        description = "Mimikatz module commands (sekurlsa, lsadump, kerberos tickets) or its author strings"
        level = "critical"
        attack = "attack.credential-access, attack.t1003.001, attack.t1003.002, attack.t1003.006, attack.t1558"
        author = "citysoc SOC"
    strings:
        $sekurlsa = /sekurlsa::(logonpasswords|wdigest|msv|kerberos|tspkg|ekeys|pth|minidump|tickets)/ nocase
        $lsadump = /lsadump::(sam|secrets|cache|lsa|dcsync|trust|setntlm|changentlm)/ nocase
        $kerberos = /kerberos::(golden|ptt|list|purge|tgt)/ nocase
        $crypto = /crypto::(capi|cng|certificates)/ nocase
        $debug_priv = "privilege::debug" nocase
        $author = "gentilkiwi" nocase
        $invoke = "Invoke-Mimikatz" nocase
    condition:
        any of them
}
