// citysoc YARA rules: PHP web shells.
// Written by the citysoc SOC team for the city's web portals. They look at web-server logs
// (the URL, a poisoned User-Agent), HTTP request bodies, and file contents that our agents
// attach when a new script appears under a web root.

rule webshell_php_eval : webshell php
{
    meta:
        id = "citysoc-yara-webshell-php-eval"
        description = "PHP web shell: eval/assert of decoded or request-supplied code"
        level = "high"
        attack = "attack.persistence, attack.t1505.003"
        author = "citysoc SOC"
    strings:
        // eval(base64_decode(...)), assert(gzinflate(...)) and friends: code hidden in an encoding.
        $eval_decoded = /\b(eval|assert)\s*\(\s*@?\s*(base64_decode|gzinflate|gzuncompress|gzdecode|str_rot13|hex2bin|convert_uudecode)\s*\(/ nocase
        // eval($_POST['x']) and the China Chopper one-liner <?php @eval($_POST['pass']);?>
        $eval_request = /\b(eval|assert)\s*\(\s*@?\s*(stripslashes\s*\(\s*)?\$_(POST|GET|REQUEST|COOKIE|SERVER)\s*\[/ nocase
        // preg_replace with the /e modifier evaluates the replacement.
        $preg_e = /preg_replace\s*\(\s*['"]([^'"\\]|\\.){1,64}\/[a-df-z]*e[a-z]*['"]\s*,\s*['"]?\$_(POST|GET|REQUEST|COOKIE)/ nocase
    condition:
        any of them
}

rule webshell_php_command : webshell php
{
    meta:
        id = "citysoc-yara-webshell-php-command"
        description = "PHP web shell: operating-system command taken from the request"
        level = "high"
        attack = "attack.persistence, attack.t1505.003, attack.execution, attack.t1059"
        author = "citysoc SOC"
    strings:
        $exec_request = /\b(system|passthru|shell_exec|exec|popen|proc_open|pcntl_exec)\s*\(\s*@?\s*(stripslashes\s*\(\s*|base64_decode\s*\(\s*)?\$_(GET|POST|REQUEST|COOKIE|SERVER)\s*\[/ nocase
        // Backtick execution of a request parameter: echo `$_GET[c]`;
        $backtick_request = /`\s*\$_(GET|POST|REQUEST|COOKIE)\s*\[[^`]{1,40}`/ nocase
    condition:
        any of them
}
