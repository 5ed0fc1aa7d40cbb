// citysoc YARA rules: PowerShell download cradles and encoded commands. The cradle rule is
// meant for the text citysoc decodes from `-EncodedCommand` arguments (UTF-16LE base64) as
// much as for plain command lines.

rule powershell_download_cradle : powershell execution
{
    meta:
        id = "citysoc-yara-powershell-download-cradle"
        description = "PowerShell download cradle: remote script downloaded and executed in memory"
        level = "high"
        attack = "attack.execution, attack.t1059.001, attack.command-and-control, attack.t1105"
        author = "citysoc SOC"
    strings:
        // IEX (New-Object Net.WebClient).DownloadString('http://...')
        $iex_webclient = /(IEX|Invoke-Expression)\s*\(?\s*\(\s*New-Object\s+(System\.)?Net\.WebClient\s*\)\s*\.\s*Download(String|Data)\s*\(/ nocase
        // (New-Object Net.WebClient).DownloadString('http://...') | IEX
        $webclient_pipe_iex = /New-Object\s+(System\.)?Net\.WebClient\s*\)\s*\.\s*Download(String|Data)\s*\([^)]{1,200}\)\s*\|\s*(IEX|Invoke-Expression)\b/ nocase
        // Invoke-WebRequest http://... | IEX ; irm ... | iex. The short aliases are spelled
        // out in their usual casings: `nocase` on three letters makes yara-x search for
        // two-letter atoms found in every other word.
        $iwr_iex = /\b(Invoke-WebRequest|Invoke-RestMethod)\s[^|\r\n]{1,200}\|\s*(IEX|Invoke-Expression)\b/ nocase
        $alias_iex = /\b(iwr|irm|IWR|IRM|Iwr|Irm)\s[^|\r\n]{1,200}\|\s*(IEX|iex|Iex|Invoke-Expression|invoke-expression)\b/
        // IEX (Invoke-WebRequest ...).Content ; iex(irm ...)
        $iex_iwr = /\b(IEX|Invoke-Expression)\s*\(\s*\(?\s*(Invoke-WebRequest|Invoke-RestMethod)\s/ nocase
        $iex_alias = /\b(IEX|iex|Iex)\s*\(\s*\(?\s*(iwr|irm|IWR|IRM|Iwr|Irm)\s/
    condition:
        any of them
}

rule powershell_encoded_command : powershell execution
{
    meta:
        id = "citysoc-yara-powershell-encoded-command"
        description = "PowerShell started with a base64-encoded command (-enc / -EncodedCommand)"
        level = "medium"
        attack = "attack.execution, attack.t1059.001, attack.defense-evasion, attack.t1027"
        author = "citysoc SOC"
    strings:
        // Any abbreviation of -EncodedCommand (-e, -en, -enc, -ec, ...) followed by a long
        // base64 argument; -ExecutionPolicy's short values never reach 20 characters.
        $encoded = /(powershell|pwsh)(\.exe)?["']?\s[^\r\n]{0,120}\s[-\/]e[a-z]{0,13}\s+["']?[A-Za-z0-9+\/]{20}/ nocase
    condition:
        $encoded
}
