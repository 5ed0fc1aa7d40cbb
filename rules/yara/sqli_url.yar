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
        // The digits are left loose on purpose: `\d{5,}` makes yara-x search for any five
        // digits (log lines are full of them) and costs more than all other patterns together.
        $benchmark = /\bbenchmark\s*\(\s*\d{1,12}\s*,/ nocase
        $waitfor = /\bwaitfor\s+delay\s+['"]\d{1,2}:\d{1,2}:\d{1,2}/ nocase
        $error_based = /\b(extractvalue|updatexml)\s*\([^)]{0,80}(concat|0x7e)/ nocase
        // ' OR '1'='1 (the application adds the closing quote) and ' OR 1=1-- / #
        $tautology_quoted = /'\s*(or|\|\|)\s+'[0-9a-z]{1,8}'\s*=\s*'[0-9a-z]{1,8}\b/ nocase
        $tautology_comment = /'\s*(or|\|\|)\s+\d{1,8}\s*=\s*\d{1,8}\s*(--|#|\/\*)/ nocase
        $schema = /\binformation_schema\s*\.\s*(tables|columns|schemata)\b/ nocase
    condition:
        any of them
}
