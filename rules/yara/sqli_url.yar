// citysoc YARA rules: SQL injection payloads in requested URLs and request bodies (public
// service portals). citysoc scans URLs both as written and percent-decoded.

rule sqli_payload : initial_access sqli
{
    meta:
        id = "citysoc-yara-sqli-payload"
        description = "SQL injection payload: UNION SELECT, time-based sleep/benchmark/waitfor, error-based extractvalue, tautology, schema enumeration"
        level = "high"
        attack = "attack.initial-access, attack.t1190"
        author = "citysoc SOC"
    strings:
        $union_select = /\bunion(\s|\+|\/\*[^*]{0,20}\*\/)+(all(\s|\+|\/\*[^*]{0,20}\*\/)+|distinct(\s|\+)+)?select(\s|\+|\/\*|\()/ nocase
        $sleep = /(['")]|\b(and|or|select|if))\s*\(?\s*(sleep|pg_sleep)\s*\(\s*\d+(\.\d+)?\s*\)/ nocase
        $benchmark = /\bbenchmark\s*\(\s*\d{5,}\s*,/ nocase
        $waitfor = /\bwaitfor\s+delay\s+['"]\d{1,2}:\d{1,2}:\d{1,2}/ nocase
        $error_based = /\b(extractvalue|updatexml)\s*\([^)]{0,80}(concat|0x7e)/ nocase
        $tautology = /'\s*(or|\|\|)\s+'?(\d+|[a-z])'?\s*=\s*'?(\d+|[a-z])(\s*(--|#|\/\*)|'\s*(--|#|$))/ nocase
        $schema = /\binformation_schema\s*\.\s*(tables|columns|schemata)\b/ nocase
    condition:
        any of them
}
