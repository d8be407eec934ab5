#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes provision(1) from the CLI's own --help, so the two cannot drift.

Usage: tools/manpage.py PROVISION_BINARY OUTPUT.1
       tools/manpage.py --check PROVISION_BINARY PAGE.1

--check renders PAGE.1 as a reader would (`man -l`, from Debian's man-db)
and fails unless every option, environment variable, example and exit code
of the binary's --help is on the rendered page: the test that the page
installed is the page of this build, and that roff did not swallow a line.

--help is the one source: its first line gives NAME, its Usage line the
SYNOPSIS, its Positionals and Options blocks OPTIONS, and the footer's
"Environment:", "Files:", "Examples:" and "Exit codes:" blocks the sections
of those names. A block this script does not know fails the build, so a new
part of --help cannot silently miss the page.
"""
import re
import subprocess
import sys

KNOWN_FOOTER = {
    "Environment": "ENVIRONMENT",
    "Files": "FILES",
    "Examples": "EXAMPLES",
    "Exit codes": "EXIT STATUS",
}


def roff(text):
    """Escapes text for a roff line: backslashes, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def parse_help(help_text):
    lines = help_text.splitlines()
    first = lines[0]
    match = re.match(r"^provision (\S+): (.*)$", first)
    if not match:
        sys.exit(f"manpage.py: the first line of --help is not 'provision VERSION: what it does': {first!r}")
    version, summary = match.groups()
    usage = next((l for l in lines if l.startswith("Usage: ")), None)
    if usage is None:
        sys.exit("manpage.py: --help has no 'Usage:' line")
    synopsis = usage.split(None, 2)[2] if len(usage.split(None, 2)) > 2 else ""

    options, footer, block, current = [], [], None, None
    for line in lines[1:]:
        if line.startswith("Usage: "):
            continue
        if line in ("Positionals:", "Options:"):
            block = "options"
            continue
        heading = re.match(r"^([A-Z][a-z]+(?: [a-z]+)*):\s*(.*)$", line)
        if heading and not line.startswith(" "):
            name, rest = heading.groups()
            if name not in KNOWN_FOOTER:
                sys.exit(f"manpage.py: --help has a block {name!r} the man page does not know; add it to KNOWN_FOOTER")
            block = "footer"
            footer.append([KNOWN_FOOTER[name], [rest] if rest else []])
            continue
        if block == "options":
            if not line.strip():
                continue
            spec = re.match(r"^  (\S.*?)(?:\s{2,}(\S.*))?$", line)
            if line.startswith("    ") and current is not None:  # the description under a long spec
                current[1] = (current[1] + " " + line.strip()).strip()
            elif spec:
                current = [spec.group(1).strip(), (spec.group(2) or "").strip()]
                options.append(current)
        elif block == "footer" and line.strip():
            footer[-1][1].append(line)
    return version, summary, synopsis, options, footer


def option_heading(spec):
    """'-j,--jobs UINT:INT in [1 - 64]' -> bold names, the value kind in italics."""
    names, _, kind = spec.partition(" ")
    out = "\\fB" + roff(names.replace(",", ", ")) + "\\fR"
    if kind:
        out += " \\fI" + roff(kind) + "\\fR"
    return out


def render(version, summary, synopsis, options, footer):
    out = [
        '.TH PROVISION 1 "" "provision %s" "User Commands"' % version,
        ".SH NAME",
        "provision \\- " + roff(summary),
        ".SH SYNOPSIS",
        "\\fBprovision\\fR " + roff(synopsis),
        ".SH DESCRIPTION",
        roff(
            "provision reads a TOML config (a local path, an http(s) URL, or $PROVISION_URL) that lists "
            "models from Hugging Face, CivitAI, Google Drive and plain URLs, and downloads them into the "
            "web UI's model folders under $WORKSPACE, many files at once, each verified and resumable."
        ),
        ".SH OPTIONS",
    ]
    for spec, description in options:
        out += [".TP", option_heading(spec), roff(description)]
    for section, body in footer:
        out.append(".SH " + section)
        if section == "EXIT STATUS":
            for line in body:
                code = re.match(r"^\s{2}(\d+)\s+(.*)$", line)
                if code:
                    out += [".TP", "\\fB" + code.group(1) + "\\fR", roff(code.group(2))]
                else:
                    out.append(roff(line.strip()))
        elif section == "EXAMPLES":
            for line in body:
                command, _, comment = line.strip().partition("  #")
                if comment:
                    comment = comment.strip()
                    out += [".PP", roff(comment[:1].upper() + comment[1:]) + ":", ".RS", ".nf", roff(command.strip()), ".fi", ".RE"]
                else:
                    out += [".RS", ".nf", roff(command.strip()), ".fi", ".RE"]
        else:
            out.append(roff(" ".join(l.strip() for l in body)))
    out += [".SH SEE ALSO", "README.md in the source tree: the config format, layouts, guarantees and lockfile."]
    return "\n".join(out) + "\n"


def help_of(binary):
    return subprocess.run([binary, "--help"], check=True, capture_output=True, text=True).stdout


def check(binary, page):
    """Renders PAGE with man -l and names every part of --help it lacks."""
    environment = {"MANWIDTH": "200", "MAN_KEEP_FORMATTING": "", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"}
    try:
        rendered = subprocess.run(["man", "-l", "-P", "cat", page], check=True, capture_output=True,
                                  text=True, env=environment).stdout
    except FileNotFoundError:
        sys.exit("manpage.py --check: `man` is missing; run tools/install-deps.sh (Debian's man-db)")
    # man may draw hyphens and quotes as Unicode, and bold by overstriking.
    rendered = re.sub(r".\x08", "", rendered).replace("\u2010", "-").replace("\u2212", "-")
    rendered = " ".join(rendered.split())
    version, summary, synopsis, options, footer = parse_help(help_of(binary))
    wanted = [summary, synopsis]
    for spec, _ in options:
        wanted += [name for name in re.findall(r"--?[a-z][a-z-]*", spec.partition(" ")[0])]
    for section, body in footer:
        text = " ".join(body)
        if section == "ENVIRONMENT":
            wanted += re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", text)
        elif section == "EXAMPLES":
            wanted += [" ".join(line.strip().partition("  #")[0].split()) for line in body]
        elif section == "EXIT STATUS":
            wanted += [code for code in re.findall(r"^\s{2}(\d+)\s", "\n".join(body), re.M)]
    missing = [item for item in wanted if item not in rendered]
    if missing:
        sys.exit(f"manpage.py --check: {page} as rendered by man lacks: " + "; ".join(repr(m) for m in missing))
    print(f"{page}: {len(wanted)} items of --help all on the rendered page ({len(options)} options)")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) != 3:
        sys.exit("usage: manpage.py PROVISION_BINARY OUTPUT.1 | manpage.py --check PROVISION_BINARY PAGE.1")
    page = render(*parse_help(help_of(sys.argv[1])))
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        out.write(page)


if __name__ == "__main__":
    main()
