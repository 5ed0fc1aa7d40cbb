#!/usr/bin/env python3
"""Turns go-syslog's expected values (Go builder expressions, kept as text in
go-syslog-machine-test-cases.jsonl) into plain JSON the Rust golden test reads:
go-syslog-expectations.jsonl. Run from this folder; the output is committed.

Each output row: input_b64, format, valid, and either
  expected: {priority, version, timestamp, hostname, appname, procid, msgid,
             message_b64, structured_data: {id: {name: value}}}
or error_message + error_column (from go-syslog's "message [col N]")."""
import base64, json, re

CALL = re.compile(r'\.\s*(Set\w+)\(')

def go_string(text, i):
    """Parses one Go string expression at text[i:], joined with +, returns (bytes, end)."""
    out = b''
    while True:
        while text[i] in ' \t\n': i += 1
        if text.startswith('isoLatin1String(', i):
            inner, i = go_string(text, i + len('isoLatin1String('))
            out += inner.decode('utf-8').encode('latin-1'); i += 1  # ')'
        elif text.startswith('BOM', i):
            out += '\ufeff'.encode(); i += 3
        elif text[i] == '`':
            j = text.index('`', i + 1); out += text[i+1:j].encode(); i = j + 1
        elif text[i] == '"':
            i += 1; buf = b''
            while text[i] != '"':
                c = text[i]
                if c == '\\':
                    n = text[i+1]
                    if n == 'x': buf += bytes([int(text[i+2:i+4], 16)]); i += 4; continue
                    if n == 'u': buf += chr(int(text[i+2:i+6], 16)).encode(); i += 6; continue
                    buf += {'n': b'\n', 't': b'\t', 'r': b'\r', '"': b'"', '\\': b'\\'}[n]; i += 2; continue
                buf += c.encode(); i += 1
            out += buf; i += 1
        else:
            raise ValueError(text[i:i+30])
        j = i
        while j < len(text) and text[j] in ' \t\n': j += 1
        if j < len(text) and text[j] == '+': i = j + 1; continue
        return out, i

FIELD = re.compile(r'(\w+):\s*syslogtesting\.(\w+)\(')

def struct_expectation(expr):
    """RFC 3164 cases are Go struct literals: Field: syslogtesting.Helper(value)."""
    exp = {'structured_data': {}}
    for m in FIELD.finditer(expr):
        field, helper, i = m.group(1), m.group(2), m.end()
        if helper == 'Uint8Address':
            j = expr.index(')', i); exp[field.lower()] = int(expr[i:j])
        elif helper == 'TimeParse':
            i = expr.index(',', i) + 1; value, _ = go_string(expr, i); exp['timestamp'] = value.decode()
        elif helper == 'StringAddress':
            value, _ = go_string(expr, i)
            key = {'Hostname': 'hostname', 'Appname': 'appname', 'ProcID': 'procid', 'MsgID': 'msgid',
                   'Message': 'message_b64'}[field]
            exp[key] = base64.b64encode(value).decode() if key == 'message_b64' else value.decode()
    return exp

def expectation(expr):
    if expr.lstrip().startswith('&SyslogMessage{'):
        return struct_expectation(expr)
    exp = {'structured_data': {}}
    for m in CALL.finditer(expr):
        name, i = m.group(1), m.end()
        if name in ('SetPriority', 'SetVersion'):
            j = expr.index(')', i); exp[name[3:].lower()] = int(expr[i:j])
        elif name == 'SetElementID':
            ident, _ = go_string(expr, i); exp['structured_data'].setdefault(ident.decode(), {})
        elif name == 'SetParameter':
            args = []
            for _ in range(3):
                value, i = go_string(expr, i); args.append(value.decode('utf-8', 'replace')); i += 1
            exp['structured_data'].setdefault(args[0], {})[args[1]] = args[2]
        else:
            value, _ = go_string(expr, i)
            key = {'SetTimestamp': 'timestamp', 'SetHostname': 'hostname', 'SetAppname': 'appname',
                   'SetProcID': 'procid', 'SetMsgID': 'msgid', 'SetMessage': 'message_b64'}[name]
            exp[key] = base64.b64encode(value).decode() if key == 'message_b64' else value.decode()
    return exp

with open('go-syslog-machine-test-cases.jsonl') as src, open('go-syslog-expectations.jsonl', 'w') as dst:
    for line in src:
        case = json.loads(line)
        row = {'case_index': case['case_index'], 'format': case['format'], 'valid': case['valid'],
               'input_b64': case['input_b64'] or base64.b64encode(case['input'].encode()).decode()}
        if case['valid']:
            row['expected'] = expectation(case['expected_value_go'])
        else:
            m = re.match(r'(.*) \[col (\d+)\]$', case['error'], re.S)
            row['error_message'], row['error_column'] = m.group(1), int(m.group(2))
        dst.write(json.dumps(row, ensure_ascii=False) + '\n')
