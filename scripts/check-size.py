#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Size limits of src/ (issue 18): no source file over MAX_FILE lines, no
function over MAX_FUNC lines, except those listed in ALLOWED with the reason
they are clearer long. Prints every offender; exit 1 when there is one, or
when an allowance is no longer needed.

The function finder is a brace matcher, not a C++ parser: comments, string
and character literals are blanked, then a "{" at namespace or class level
that follows a ")" (possibly with const, noexcept, override, an initializer
list or a trailing return type in between) opens a function body; its length
is counted from the line of its name to the line of its closing brace.
Lambdas count as part of the function that holds them."""
import os
import re
import sys

MAX_FILE = 500
MAX_FUNC = 80

# "path:function" -> why it is clearer long
ALLOWED = {
}

SCOPE_RE = re.compile(r'\b(namespace|class|struct|enum|union)\b[^()]*$')


def blank(text):
    """Comments, strings and characters replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            if m:
                end = ')' + m.group(1) + '"'
                j = text.find(end, i)
                j = n if j < 0 else j + len(end)
                out.append(re.sub(r'[^\n]', ' ', text[i:j]))
                i = j
            else:
                out.append(c)
                i += 1
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            j = min(j + 1, n)
            out.append(c + ' ' * (j - i - 2) + c if j - i >= 2 else c)
            i = j
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def functions(path):
    text = blank(open(path, encoding='utf-8').read())
    # preprocessor lines out
    text = re.sub(r'(?m)^\s*#.*$', lambda m: ' ' * len(m.group(0)), text)
    stack = []          # 'scope' | 'func' | 'block'
    start = 0           # index after the last ; { }
    found = []
    line = 1
    for i, c in enumerate(text):
        if c == '\n':
            line += 1
        elif c == '{':
            head = text[start:i]
            if all(k == 'scope' for k in stack):
                if SCOPE_RE.search(head.replace('\n', ' ')):
                    stack.append('scope')
                elif ')' in head:
                    name = re.findall(r'([~\w:]+)\s*\(', head)
                    first = line - head.rstrip().count('\n') + \
                        (len(head) - len(head.lstrip())) * 0
                    # the line of the function's name
                    k = head.find(name[0] + '(') if name else -1
                    if k < 0 and name:
                        k = head.find(name[0])
                    first = line - head[k:].count('\n') if k >= 0 else line
                    stack.append(('func', name[0] if name else '?', first))
                else:
                    stack.append('block')
            else:
                stack.append('block')
            start = i + 1
        elif c == '}':
            if stack:
                top = stack.pop()
                if isinstance(top, tuple):
                    found.append((top[1], top[2], line - top[2] + 1))
            start = i + 1
        elif c == ';':
            start = i + 1
    return found


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
    if len(sys.argv) == 3 and sys.argv[1] == '--root':
        root = sys.argv[2]
    bad = 0
    used = set()
    for d, _, files in sorted(os.walk(os.path.join(root, 'src'))):
        for f in sorted(files):
            if not f.endswith(('.cpp', '.hpp')):
                continue
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)
            n = sum(1 for _ in open(p, encoding='utf-8'))
            if n > MAX_FILE:
                key = rel
                if key in ALLOWED:
                    used.add(key)
                else:
                    print(f'{rel}: {n} lines (limit {MAX_FILE})')
                    bad += 1
            for name, first, length in functions(p):
                if length > MAX_FUNC:
                    key = f'{rel}:{name}'
                    if key in ALLOWED:
                        used.add(key)
                        continue
                    print(f'{rel}:{first}: {name}() {length} lines '
                          f'(limit {MAX_FUNC})')
                    bad += 1
    for key in sorted(set(ALLOWED) - used):
        print(f'{key}: allowed as long, but no longer is: drop it from ALLOWED')
        bad += 1
    if bad:
        print(f'check-size: {bad} problem(s)')
        return 1
    print('check-size: every file and function within its limit')
    return 0


if __name__ == '__main__':
    sys.exit(main())
