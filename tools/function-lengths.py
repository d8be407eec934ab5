#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Lists the longest function bodies in C++ headers, for the house's size rules.

Usage: tools/function-lengths.py [--top N] [--over LINES] FILE...
Prints "LINES FILE:LINE NAME" longest first. A function is a brace block
opened at namespace or class scope after a parenthesised signature; its
length runs from the signature's first line to the closing brace, as a
reader scrolls it (comments and blank lines included). Lambdas and blocks
inside a function count towards it. A heuristic, not a parser: macros that
open braces or raw strings holding braces can mislead it; the headers here
have neither at namespace scope.
"""
import re
import sys

CONTROL = re.compile(r"^(if|for|while|switch|catch|do|else|return)\b")


def strip(text):
    """Blanks comments, string and character literals (raw strings too), keeping newlines."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            k = text.find("(", i)
            delim = ")" + text[i + 2 : k] + '"'
            j = text.find(delim, k)
            j = n if j < 0 else j + len(delim)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text[i] in "\"'" and not (text[i] == "'" and i > 0 and text[i - 1].isalnum()):
            quote, j = text[i], i + 1
            while j < n and text[j] != quote:
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def functions(path):
    text = strip(open(path, encoding="utf-8").read())
    stack = []  # scope kinds: "scope" (namespace/class/other) or "function"
    start = 0  # where the current statement began
    found = []
    for i, ch in enumerate(text):
        if ch == "{":
            head = text[start:i].strip()
            inside_function = any(kind[0] == "function" for kind in stack)
            flat = " ".join(head.split())
            is_function = (
                not inside_function
                and "(" in flat
                and flat.rstrip().endswith((")", "const", "noexcept", "override", "final"))
                or (not inside_function and re.search(r"\)\s*(const\s*)?(noexcept\s*)?->\s*[\w:<>, ]+$", flat))
            )
            if is_function and (CONTROL.match(flat) or re.match(r"^[\w:<>]+\s*=", flat)):
                is_function = False
            if is_function:
                first_line = text.count("\n", 0, start + (len(text[start:i]) - len(text[start:i].lstrip()))) + 1
                name = re.sub(r"\s*\(.*", "", flat.split("\n")[-1])
                name = name.split()[-1] if name.split() else "?"
                stack.append(("function", first_line, name))
            else:
                stack.append(("scope",))
            start = i + 1
        elif ch == "}":
            if stack:
                kind = stack.pop()
                if kind[0] == "function":
                    last_line = text.count("\n", 0, i) + 1
                    found.append((last_line - kind[1] + 1, path, kind[1], kind[2]))
            start = i + 1
        elif ch == ";":
            start = i + 1
        elif ch == ":" and text[i - 1 : i + 1] != "::" and text[i : i + 2] != "::":
            # access specifiers ("public:") end a statement head at class scope
            if re.search(r"\b(public|private|protected)\s*$", text[start:i]):
                start = i + 1
    return found


def main(argv):
    top, over, files = 10, None, []
    args = iter(argv)
    for arg in args:
        if arg == "--top":
            top = int(next(args))
        elif arg == "--over":
            over = int(next(args))
        else:
            files.append(arg)
    everything = sorted((f for path in files for f in functions(path)), reverse=True)
    if over is not None:
        everything = [f for f in everything if f[0] > over]
    else:
        everything = everything[:top]
    for length, path, line, name in everything:
        print(f"{length:5d} {path}:{line} {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
