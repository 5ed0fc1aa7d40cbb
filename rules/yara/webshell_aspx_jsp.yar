// citysoc YARA rules: ASP.NET and JSP web shells (the e-government portals run IIS and Tomcat).

rule webshell_aspx_eval : webshell aspx
{
    meta:
        id = "citysoc-yara-webshell-aspx-eval"
        description = "ASPX web shell: request data evaluated by JScript.NET (China Chopper style) or compiled at runtime"
        level = "high"
        attack = "attack.persistence, attack.t1505.003"
        author = "citysoc SOC"
    strings:
        // <%@ Page Language="Jscript"%><%eval(Request.Item["k"],"unsafe");%>
        $eval_request = /eval\s*\(\s*Request(\.Item|\.Form|\.QueryString|\.Params)?\s*[\[(]\s*['"][^'"]{1,32}['"]\s*[\])]\s*,\s*['"]unsafe['"]/ nocase
        $jscript_page = /<%@\s*Page\s+Language\s*=\s*["']?Jscript["']?\s*%>\s*<%\s*eval\s*\(/ nocase
        // Runtime compilation of code sent in the request.
        $codedom = /CompileAssemblyFromSource\s*\([^)]{0,100}Request(\.Form|\.Params|\.QueryString)?\s*\[/ nocase
    condition:
        any of them
}

rule webshell_jsp_exec : webshell jsp
{
    meta:
        id = "citysoc-yara-webshell-jsp-exec"
        description = "JSP web shell: request parameter passed to Runtime.exec or ProcessBuilder"
        level = "high"
        attack = "attack.persistence, attack.t1505.003, attack.execution, attack.t1059"
        author = "citysoc SOC"
    strings:
        $runtime_exec = /Runtime\s*\.\s*getRuntime\s*\(\s*\)\s*\.\s*exec\s*\(\s*request\s*\.\s*getParameter\s*\(/
        $process_builder = /new\s+ProcessBuilder\s*\([^)]{0,80}request\s*\.\s*getParameter\s*\(/
        $cmd_shell = /exec\s*\(\s*new\s+String\s*\[\s*\]\s*\{\s*"(cmd(\.exe)?|\/bin\/(ba)?sh)"\s*,\s*"(\/c|-c)"\s*,\s*request\s*\.\s*getParameter/
    condition:
        any of them
}
