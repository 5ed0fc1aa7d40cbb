// citysoc YARA rules: cryptocurrency miners dropped on compromised city servers.

rule cryptominer_xmrig : impact miner
{
    meta:
        id = "citysoc-yara-cryptominer"
        description = "Cryptocurrency miner: stratum pool URL, XMRig options or well-known Monero pools"
        level = "high"
        attack = "attack.impact, attack.t1496"
        author = "citysoc SOC"
    strings:
        $stratum = /stratum\d?\+(tcp|ssl|tls):\/\//  nocase
        $xmrig = /\bxmrig(-notls|-cuda|-opencl)?\b/ nocase
        $donate = /--donate-level[= ]\d/ nocase
        $algo = /--algo[= ](rx\/0|rx\/wow|cn\/r|cryptonight|randomx|kawpow|ethash|argon2\/chukwa)\b/ nocase
        $pool = /\b(pool\.minexmr\.com|pool\.supportxmr\.com|xmr\.2miners\.com|gulf\.moneroocean\.stream|xmr-[a-z]{2,4}\d?\.nanopool\.org|pool\.hashvault\.pro)\b/ nocase
        $cpuminer = /\bminerd\s[^\r\n]{0,80}-o\s+stratum/ nocase
    condition:
        any of them
}
