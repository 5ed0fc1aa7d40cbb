// citysoc YARA rules: dumping LSASS memory with tools that ship with Windows or Sysinternals.

rule credential_lsass_dump_tools : credential_access lsass
{
    meta:
        id = "citysoc-yara-credential-lsass-dump"
        description = "LSASS memory dump with procdump -ma, comsvcs.dll MiniDump, or Out-Minidump"
        level = "critical"
        attack = "attack.credential-access, attack.t1003.001"
        author = "citysoc SOC"
    strings:
        // procdump.exe -accepteula -ma lsass.exe C:\temp\l.dmp
        $procdump = /procdump(64)?(\.exe)?["']?\s[^\r\n]{0,80}-ma\s+["']?lsass/ nocase
        // rundll32 C:\Windows\System32\comsvcs.dll, MiniDump 652 C:\temp\x.dmp full (also by ordinal #24)
        $comsvcs = /comsvcs(\.dll)?["']?\s*[,#]?\s*(MiniDump[A-Za-z]*|#\+?0*24)\s/ nocase
        $out_minidump = /Out-Minidump\s[^\r\n]{0,120}lsass/ nocase
        $dumpert = "Outflank-Dumpert" nocase
    condition:
        any of them
}
