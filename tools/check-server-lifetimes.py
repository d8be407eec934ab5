#!/usr/bin/env python3
"""Fail when a loopback server's handler uses a local that dies before the server.

A LoopbackServer's handlers (and the content providers they set) run on the
server's own threads, and can still be running after the client under test has
given up: an endless body keeps writing until its next write fails. The server
stops and joins those threads in its destructor, so everything a handler
captures by reference must be declared *before* the server, and so destroyed
after it. CI's TSan stage met the other order as a SEGV (a provider copying
from a string the test had already destroyed).

The check is textual and deliberately narrow: in each function, a server made
by LoopbackServer::http/https/https_with, a handler registered on it with a
by-reference capture, and a local of the same function declared after the
server that the registration names. Usage: check-server-lifetimes.py [FILE...]
(default: tests/*.cpp). Prints file:line for each finding; exits 1 if any.
"""

import glob
import re
import sys

SERVER = re.compile(
    r"^(?P<indent> +)(?:auto|std::unique_ptr<(?:provision_test::)?LoopbackServer>)\s+(?P<name>\w+)\s*=\s*"
    r"(?:provision_test::)?LoopbackServer::https?(?:_with)?\(")
# A local declaration at the function's own level: `TYPE name` then = { ( or ;
DECLARATION = re.compile(r"^(?P<indent> +)(?:const\s+|static\s+)?[\w:]+(?:<.*>)?[&*]?\s+(?P<name>\w+)\s*(?:=|\{|\(|;)")
NOT_A_TYPE = {"return", "co_return", "else", "case", "delete", "throw", "goto", "using", "namespace"}


def registration_text(lines, start):
    """The text of the call starting at lines[start], up to its closing ')'."""
    depth = 0
    seen_open = False
    text = []
    for line in lines[start:]:
        # Strings first: a URL's "//" inside one is not a comment.
        code = re.sub(r'"(?:\\.|[^"\\])*"', '""', line).split("//")[0]
        text.append(code)
        for ch in code:
            if ch == "(":
                depth += 1
                seen_open = True
            elif ch == ")":
                depth -= 1
        if seen_open and depth <= 0:
            break
    return "\n".join(text)


def findings(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    found = []
    for index, line in enumerate(lines):
        server = SERVER.match(line)
        if not server:
            continue
        indent = len(server.group("indent"))
        name = server.group("name")
        late_locals = {}
        for later in range(index + 1, len(lines)):
            text = lines[later]
            if text.strip() and len(text) - len(text.lstrip()) < indent:
                break  # the server's scope ended
            declaration = DECLARATION.match(text)
            if (declaration and len(declaration.group("indent")) == indent
                    and text.split()[0] not in NOT_A_TYPE and declaration.group("name") != name):
                late_locals[declaration.group("name")] = later
            if re.search(r"\b" + re.escape(name) + r"->server\(\)\.\w+\(", text):
                call = registration_text(lines, later)
                if not re.search(r"\[[^\]]*&", call):
                    continue  # nothing captured by reference
                for local, declared_at in late_locals.items():
                    if re.search(r"\b" + re.escape(local) + r"\b", call):
                        found.append(f"{path}:{declared_at + 1}: '{local}' is declared after server '{name}' "
                                     f"(line {index + 1}) but its handler at line {later + 1} uses it: "
                                     "declare it before the server")
    return found


def main(argv):
    paths = argv[1:] or sorted(glob.glob("tests/*.cpp"))
    problems = [problem for path in paths for problem in findings(path)]
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} handler(s) use locals that die before their server", file=sys.stderr)
        return 1
    print(f"server lifetimes ok ({len(paths)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
