#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generate single_include/provision/provision.hpp from include/.

Starting at the umbrella header include/provision/provision.hpp, every project
include (a quoted include, or an angled one that names a file under include/)
is inlined depth-first at the point where it is first included; later
inclusions of the same file are dropped, because each file is emitted once.
System includes (<vector>, <openssl/ssl.h>, ...) are listed once, at the top
(inside the include guard), in the order they are first met, so a reader sees
every external dependency in one place; where a file had one, a comment says
so. A system include inside a conditional block (#if ... #endif, other than a
file's include guard) is an error, because hoisting it would change its meaning.

Usage:
    python3 tools/amalgamate.py              write the single header
    python3 tools/amalgamate.py --check      exit 1 if the committed one is stale
    python3 tools/amalgamate.py --output F   write (or --check) F instead

The output is a pure function of the files under include/ and of LICENSE: no
timestamps, no dependence on directory listing order or locale, '\\n' line
endings, one trailing newline.

Limits (checked where cheap, documented where not): includes are found line by
line outside comments and raw string literals; #if/#ifdef around an include is
not evaluated, so a project file must not be included conditionally in one
place and unconditionally in another.
"""

import argparse
import difflib
import os
import re
import sys

UMBRELLA = "include/provision/provision.hpp"
VERSION_HEADER = "include/provision/version.hpp"
DEFAULT_OUTPUT = "single_include/provision/provision.hpp"
LICENSE_FILE = "LICENSE"
STALE_MESSAGE = DEFAULT_OUTPUT + " is stale: run python3 tools/amalgamate.py"

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*(?:"(?P<quoted>[^"]+)"|<(?P<angled>[^>]+)>)')
SPDX_RE = re.compile(r"^\s*//\s*SPDX-[A-Za-z-]+:")
PRAGMA_ONCE_RE = re.compile(r"^\s*#\s*pragma\s+once\b")
SINGLE_HEADER_RE = re.compile(r"^(\s*#\s*define\s+PROVISION_SINGLE_HEADER\s+)0\b")
VERSION_RE = re.compile(r'^\s*#\s*define\s+PROVISION_VERSION_STRING\s+"([^"]+)"', re.MULTILINE)
DIRECTIVE_RE = re.compile(r"^\s*#\s*(\w+)\s*(\S*)")
# A '"' ending one of these opens a raw string literal: R"delim( ... )delim".
RAW_PREFIX_RE = re.compile(r"(?:^|[^A-Za-z0-9_])(?:u8|u|U|L)?R$")
# A "'" right after a token that starts with a digit is a digit separator.
NUMBER_BEFORE_RE = re.compile(r"(?:^|[^A-Za-z0-9_.])[0-9][A-Za-z0-9_.']*$")


def directive_name(line):
    """'define' for '#define X', None for a line that is not a directive."""
    match = DIRECTIVE_RE.match(line)
    return match.group(1) if match else None


OUTSIDE_INCLUDE = object()  # resolve(): the file exists, but not under include/


class AmalgamateError(Exception):
    """A problem in the input tree; the message names the file (and line)."""


def read_text(path):
    """Reads UTF-8 text with any line ending normalised to '\\n'."""
    with open(path, "r", encoding="utf-8", newline="") as handle:
        return handle.read().replace("\r\n", "\n").replace("\r", "\n")


class LexState:
    """Tracks block comments and raw string literals across lines, so that an
    '#include' inside either is left alone (a compiler would not see it)."""

    def __init__(self):
        self.in_block_comment = False
        self.raw_terminator = None  # e.g. ')delim"' while inside R"delim( ... )delim"

    def at_code(self):
        return not self.in_block_comment and self.raw_terminator is None

    def scan(self, line):
        i = 0
        n = len(line)
        while i < n:
            if self.in_block_comment:
                end = line.find("*/", i)
                if end < 0:
                    return
                self.in_block_comment = False
                i = end + 2
            elif self.raw_terminator is not None:
                end = line.find(self.raw_terminator, i)
                if end < 0:
                    return
                i = end + len(self.raw_terminator)
                self.raw_terminator = None
            elif line.startswith("//", i):
                return
            elif line.startswith("/*", i):
                self.in_block_comment = True
                i += 2
            elif line[i] == '"' and RAW_PREFIX_RE.search(line, 0, i):
                paren = line.find("(", i + 1)
                if paren < 0:
                    raise AmalgamateError("raw string literal delimiter must end on its opening line")
                self.raw_terminator = ")" + line[i + 1:paren] + '"'
                i = paren + 1
            elif line[i] == "'" and NUMBER_BEFORE_RE.search(line, 0, i):
                i += 1  # a digit separator (1'000'000), not a character literal
            elif line[i] in "\"'":
                quote = line[i]
                i += 1
                while i < n and line[i] != quote:
                    i += 2 if line[i] == "\\" else 1
                i += 1
            else:
                i += 1


class Amalgamator:
    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.include_dir = os.path.join(self.root, "include")
        self.emitted = set()  # real paths of files already inlined (or being inlined)
        self.system_includes = []  # "#include <...>" lines in the order first met, each once
        self.single_header_rewrites = 0

    def rel(self, path):
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def under_include(self, path):
        return path.startswith(self.include_dir + os.sep)

    def resolve(self, name, quoted, including_dir):
        """Where a compiler given -Iinclude would find `name`: the real path of
        a project file, OUTSIDE_INCLUDE for an existing file elsewhere, None
        when nothing matches (a system header, or a broken quoted include)."""
        candidates = []
        if quoted:
            candidates.append(os.path.join(including_dir, name))
        candidates.append(os.path.join(self.include_dir, name))
        for candidate in candidates:
            real = os.path.realpath(candidate)
            if os.path.isfile(real):
                if not self.under_include(real):
                    return OUTSIDE_INCLUDE
                return real
        return None

    def generate(self):
        umbrella = os.path.join(self.root, UMBRELLA)
        if not os.path.isfile(umbrella):
            raise AmalgamateError(UMBRELLA + ": umbrella header not found")
        version = self.read_version()
        license_text = self.read_license()

        body = []
        self.inline(os.path.realpath(umbrella), body, is_root=True)
        if self.single_header_rewrites != 1:
            raise AmalgamateError(
                "%s: expected exactly one '#define PROVISION_SINGLE_HEADER 0' among the inlined files, found %d"
                % (VERSION_HEADER, self.single_header_rewrites))
        self.check_guard(body)
        # check_guard made sure the umbrella's guard opens the body: its #define is the first.
        define_at = next(i for i, line in enumerate(body) if directive_name(line) == "define")
        hoisted = ["", "// External headers, each once (the files below say where they used them)."]
        body[define_at + 1:define_at + 1] = hoisted + self.system_includes

        banner = [
            "// provision v%s \u2014 generated by tools/amalgamate.py from include/; do not edit by hand" % version,
            "// SPDX-License-Identifier: MIT",
            "//",
        ]
        for line in license_text.strip("\n").split("\n"):
            banner.append(("// " + line).rstrip())
        banner.append("")

        text = "\n".join(banner + body)
        return text.rstrip("\n") + "\n"

    def read_version(self):
        path = os.path.join(self.root, VERSION_HEADER)
        if not os.path.isfile(path):
            raise AmalgamateError(VERSION_HEADER + ": not found (the banner takes the version from it)")
        match = VERSION_RE.search(read_text(path))
        if not match:
            raise AmalgamateError(VERSION_HEADER + ': no #define PROVISION_VERSION_STRING "X.Y.Z"')
        return match.group(1)

    def read_license(self):
        path = os.path.join(self.root, LICENSE_FILE)
        if not os.path.isfile(path):
            raise AmalgamateError(LICENSE_FILE + ": not found (the banner carries its full text)")
        return read_text(path)

    def inline(self, path, out, is_root=False):
        self.emitted.add(path)
        name = self.rel(path)
        lines = read_text(path).split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the file's final newline

        # The banner states the licence once for the whole file.
        while lines and SPDX_RE.match(lines[0]):
            lines.pop(0)

        if not is_root:
            out.append("// ---- begin %s ----" % name)
        lex = LexState()
        depth = 0  # open #if/#ifdef/#ifndef blocks; the include guard is the first
        for number, line in enumerate(lines, start=1):
            if lex.at_code():
                directive = directive_name(line)
                if directive in ("if", "ifdef", "ifndef"):
                    depth += 1
                elif directive == "endif":
                    depth -= 1
                match = INCLUDE_RE.match(line)
                if match:
                    self.handle_include(match, line, path, name, number, out, conditional=depth > 1)
                    continue
                if not is_root and PRAGMA_ONCE_RE.match(line):
                    continue
                rewritten, count = SINGLE_HEADER_RE.subn(r"\g<1>1", line)
                if count:
                    self.single_header_rewrites += count
                    line = rewritten
            try:
                lex.scan(line)
            except AmalgamateError as error:
                raise AmalgamateError("%s:%d: %s" % (name, number, error))
            out.append(line)
        if lex.raw_terminator is not None:
            raise AmalgamateError("%s: unterminated raw string literal" % name)
        if not is_root:
            out.append("// ---- end %s ----" % name)

    def handle_include(self, match, line, path, name, number, out, conditional=False):
        quoted = match.group("quoted") is not None
        target = match.group("quoted") if quoted else match.group("angled")
        resolved = self.resolve(target, quoted, os.path.dirname(path))
        if resolved is OUTSIDE_INCLUDE and quoted:
            raise AmalgamateError(
                '%s:%d: "%s" is outside include/; the single header can only inline files under include/'
                % (name, number, target))
        if resolved is None or resolved is OUTSIDE_INCLUDE:
            if quoted:
                raise AmalgamateError(
                    '%s:%d: cannot find "%s" under include/ (looked in %s/ and include/)'
                    % (name, number, target, os.path.dirname(name)))
            # A system header: the user's compiler finds it; listed once at the top.
            if conditional:
                raise AmalgamateError("%s:%d: <%s> is included inside #if ... #endif; the single header lists "
                                      "system includes once at the top, so include it unconditionally"
                                      % (name, number, target))
            spelled_line = "#include <%s>" % target
            if spelled_line not in self.system_includes:
                self.system_includes.append(spelled_line)
            out.append("// #include <%s>: listed at the top" % target)
            return
        spelled = '"%s"' % target if quoted else "<%s>" % target
        if resolved in self.emitted:
            out.append("// #include %s: %s already inlined above" % (spelled, self.rel(resolved)))
            return
        self.inline(resolved, out)

    def check_guard(self, body):
        """The single header must keep the umbrella's include guard, so that
        including it twice in one translation unit stays harmless."""
        directives = [(m.group(1), m.group(2)) for m in map(DIRECTIVE_RE.match, body) if m]
        ok = (len(directives) >= 3 and directives[0][0] == "ifndef" and directives[1] == ("define", directives[0][1])
              and directives[-1][0] == "endif")
        if not ok:
            raise AmalgamateError(
                UMBRELLA + ": must open with '#ifndef GUARD' / '#define GUARD' and close with '#endif' "
                "so the single header keeps its include guard")


def unified_diff_head(old, new, path, limit=40):
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), path + " (committed)",
                                     path + " (generated)", lineterm="", n=2))
    head = diff[:limit]
    if len(diff) > limit:
        head.append("... (%d more diff lines)" % (len(diff) - limit))
    return "\n".join(head)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate the single-header provision.hpp from include/.")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the output file differs from what would be generated")
    parser.add_argument("--output", metavar="PATH",
                        help="file to write or check (default: %s under the root)" % DEFAULT_OUTPUT)
    parser.add_argument("--root", metavar="DIR",
                        default=os.path.dirname(os.path.dirname(os.path.realpath(__file__))),
                        help="project root holding include/ and LICENSE (default: the parent of tools/)")
    args = parser.parse_args(argv)

    try:
        text = Amalgamator(args.root).generate()
    except AmalgamateError as error:
        print("amalgamate: error: %s" % error, file=sys.stderr)
        return 2
    except OSError as error:
        print("amalgamate: error: %s" % error, file=sys.stderr)
        return 2

    output = args.output or os.path.join(args.root, DEFAULT_OUTPUT)
    data = text.encode("utf-8")

    if args.check:
        shown = args.output or DEFAULT_OUTPUT
        try:
            with open(output, "rb") as handle:
                committed = handle.read()
        except FileNotFoundError:
            print("%s is stale: run python3 tools/amalgamate.py (the file does not exist)" % shown, file=sys.stderr)
            return 1
        if committed == data:
            return 0
        print("%s is stale: run python3 tools/amalgamate.py" % shown, file=sys.stderr)
        print(unified_diff_head(committed.decode("utf-8", errors="replace"), text, shown), file=sys.stderr)
        return 1

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    temporary = output + ".tmp"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
