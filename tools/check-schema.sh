#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Proves that schema/provision.schema.json, which editors (taplo, VS Code's Even
# Better TOML) use to check a config as it is typed, agrees with the config
# parser (include/provision/config/). A schema that refuses a good config
# teaches users to ignore their editor; one that misses a key the parser
# learned stops helping. So the schema is held to the parser here, by a real
# validator (taplo, installed by tools/install-deps.sh), not by reading it.
#
#   tools/check-schema.sh [--parse-config PROGRAM]
#
# 1. Names. The parser's own lists are read from its source with fixed
#    patterns, and each must equal the schema's:
#      top-level keys    `name == "..."` in Checker::check_document
#      [settings] keys   `key->str() == "..."` in Checker::check_settings
#      layouts           the `layouts[]` array in Checker::check_settings
#      sources           `name == "..."` in Checker::entry_source
#      repo types        `text == "..."` in the first test of check_string_key's
#                        repo_type branch (the later ones only shape a hint)
#      entry keys        the three lists of allowed_keys() (checker.hpp): each
#                        source's keys are properties of definitions.entryTable,
#                        and that source's `then` forbids exactly the others
#      categories        every layout.add / add_alias name in layout/layout.hpp,
#                        plus `entry.category == "..."` (auto) in the checker
#    So when the parser learns a key (or a source, layout or category), this
#    test fails until the schema knows it. A pattern that finds nothing fails
#    too: the parser was reorganised and this script must follow it.
# 2. Good configs: tests/data/configs/*.toml (the seed's examples),
#    examples/configs/*.toml and tests/data/schema/*.toml (valid values at the
#    edges of the rules, where a schema is most likely to be too strict). Each
#    must start with a #:schema line naming the schema, and taplo is run on
#    them through that line. Then every ```toml block of README.md. The parser
#    (examples/parse_config, run in a fixed environment) is the judge: a file
#    it accepts must pass the schema; a README block it refuses (the lockfile
#    example, a block with placeholders) must be refused by taplo as well.
# 3. The bad-config corpus, tests/data/bad_configs/*.toml: each is refused by
#    the parser (its .expected says how). When that is a TOML syntax error,
#    taplo must refuse the file, as bad TOML or by the schema; otherwise the
#    schema itself must refuse it. The exceptions are listed, with their
#    reasons, in tests/data/schema/cannot-express.txt, each with
#    what taplo does instead (accepted, toml or crashed); a listed file that
#    does anything else fails too, so the list cannot go stale.
#
# Every disagreement is printed with its file and reason, then a summary; the
# exit status is 1 when there is any. Without taplo (or node) the check fails
# and says to run tools/install-deps.sh: a skipped check would pass unseen.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)

parse_config=${PARSE_CONFIG:-}
while (($#)); do
  case "$1" in
    --parse-config) parse_config=${2:?--parse-config needs a program}; shift 2 ;;
    -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "check-schema: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

schema="$root/schema/provision.schema.json"
cannot_express="tests/data/schema/cannot-express.txt"
taplo_cli="$root/tools/.taplo/node_modules/@taplo/cli/dist/cli.js"
if ! command -v node >/dev/null 2>&1 || [[ ! -f $taplo_cli ]]; then
  echo "check-schema: FAIL: taplo is not installed (node and tools/.taplo/node_modules/@taplo/cli);" \
    "run tools/install-deps.sh" >&2
  exit 1
fi
if [[ -z $parse_config && -x build/examples/parse_config ]]; then parse_config=build/examples/parse_config; fi
if [[ -z $parse_config || ! -x $parse_config ]]; then
  echo "check-schema: FAIL: examples/parse_config is not built; run 'meson compile -C build examples/parse_config'" \
    "or pass --parse-config PROGRAM" >&2
  exit 1
fi
taplo_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$root/tools/.taplo/node_modules/@taplo/cli/package.json")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=()
fail() {
  failures+=("$1")
  echo "FAIL  $1"
}

# ---------------------------------------------------------------- 1. names
echo "== names: the parser's lists against the schema's"
if ! python3 - "$root" <<'PY'; then fail "the schema's names differ from the parser's (above)"; fi
import json, pathlib, re, sys

root = pathlib.Path(sys.argv[1])
config = root / "include/provision/config"
schema = json.loads((root / "schema/provision.schema.json").read_text(encoding="utf-8"))
problems = []


def body(file, head):
    """The text of the function that starts with `head`, up to its closing brace at column 0."""
    text = (config / file).read_text(encoding="utf-8")
    start = text.find(head)
    if start < 0:
        problems.append(f"cannot find `{head}` in include/provision/config/{file}; update tools/check-schema.sh")
        return ""
    end = text.find("\n}\n", start)
    return text[start:end]


def names(pattern, text, what):
    found = re.findall(pattern, text)
    if not found:
        problems.append(f"found no {what} in the parser's source (pattern {pattern!r}); update tools/check-schema.sh")
    return set(found)


def same(what, parser, in_schema, where):
    for name in sorted(parser - in_schema):
        problems.append(f"{what}: the parser accepts \"{name}\", the schema does not know it (add it to {where})")
    for name in sorted(in_schema - parser):
        problems.append(f"{what}: the schema allows \"{name}\", the parser refuses it (remove it from {where})")
    print(f"  {what}: {len(parser)} ({', '.join(sorted(parser))})")


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


top = schema.get("properties", {})
settings = top.get("settings", {}).get("properties", {})
entry = schema.get("definitions", {}).get("entryTable", {})
entry_keys = set(entry.get("properties", {}))

document = body("checker_document.hpp", "inline void Checker::check_document(")
same("top-level keys", names(r'name == "(\w+)"', document, "top-level keys"), set(top), "the schema's properties")

check_settings = body("checker_document.hpp", "inline void Checker::check_settings(")
same("[settings] keys", names(r'key->str\(\) == "(\w+)"', check_settings, "settings keys"), set(settings),
     "properties.settings.properties")
layouts_array = re.search(r"layouts\[\] = \{([^}]*)\}", check_settings)
layouts = set(re.findall(r'"(\w+)"', layouts_array.group(1))) if layouts_array else set()
if not layouts:
    problems.append("found no layouts[] array in Checker::check_settings; update tools/check-schema.sh")
same("layouts", layouts, set(settings.get("layout", {}).get("enum", [])), "properties.settings.properties.layout.enum")

sources = names(r'if \(name == "(\w+)"\) return SourceKind::', body("checker_entries.hpp",
                "inline std::optional<SourceKind> Checker::entry_source("), "source names")
same("sources", sources, set(entry.get("properties", {}).get("source", {}).get("enum", [])),
     "definitions.entryTable.properties.source.enum")

string_keys = body("checker_entries.hpp", "inline void Checker::check_string_key(")
branch = re.search(r'key == "repo_type"\)(.*?)\} else if \(key ==', string_keys, re.S)
accepting = re.search(r"if \(([^)]*)\)", branch.group(1)) if branch else None  # the first test; later ones hint
same("repo types", names(r'text == "(\w+)"', accepting.group(1) if accepting else "", "repo types"),
     set(entry.get("properties", {}).get("repo_type", {}).get("enum", [])),
     "definitions.entryTable.properties.repo_type.enum")

allowed_body = (config / "checker.hpp").read_text(encoding="utf-8")
allowed_body = allowed_body[allowed_body.find("allowed_keys(SourceKind kind)"):]
allowed_body = allowed_body[: allowed_body.find("\n}\n")]
lists = {name: set(re.findall(r'"(\w+)"', keys))
         for name, keys in re.findall(r"std::vector<std::string_view> (\w+)\{(.*?)\};", allowed_body, re.S)}
returned = dict(re.findall(r"case SourceKind::(\w+): return (\w+);", allowed_body))
allowed = {source: lists.get(variable, set()) for source, variable in returned.items()}
if not allowed or set(allowed) != sources:
    problems.append(f"allowed_keys() in checker.hpp names the sources {sorted(allowed)}, entry_source() "
                    f"{sorted(sources)}; update tools/check-schema.sh")
every_key = set().union(*allowed.values()) if allowed else set()
same("entry keys (all sources)", every_key, entry_keys, "definitions.entryTable.properties")
for source, keys in sorted(allowed.items()):
    then = None
    for rule in entry.get("allOf", []):
        if "if" in rule and any(node.get("properties", {}).get("source", {}).get("const") == source
                                for node in walk(rule["if"])):
            then = rule.get("then", {})
    if then is None:
        problems.append(f"entry keys: definitions.entryTable.allOf has no if/then for source \"{source}\"")
        continue
    forbidden = {key for key, rule in then.get("properties", {}).items() if rule is False}
    for key in sorted(keys & forbidden):
        problems.append(f"entry keys: the parser accepts \"{key}\" for source \"{source}\", the schema forbids it there")
    for key in sorted((entry_keys - keys) - forbidden):
        problems.append(f"entry keys: the parser refuses \"{key}\" for source \"{source}\", the schema allows it there "
                        f"(add \"{key}\": false to that source's then.properties)")
    print(f"  entry keys for {source}: {len(keys)} ({', '.join(sorted(keys))})")

layout_text = (root / "include/provision/layout/layout.hpp").read_text(encoding="utf-8")
categories = names(r'layout\.add(?:_alias)?\("(\w+)"', layout_text, "categories in layout/layout.hpp")
categories |= names(r'entry\.category == "(\w+)"', body("checker_entries.hpp",
                    "inline void Checker::check_auto_category("), "special categories")
models = top.get("models", {})
same("categories", categories, set(models.get("properties", {})), "properties.models.properties")
known_without_directories = set()
for node in walk(schema.get("then", {})):
    known_without_directories |= set(node.get("properties", {}).get("models", {}).get("propertyNames", {})
                                     .get("enum", []))
same("categories (without [directories])", categories, known_without_directories,
     "then.properties.models.propertyNames.enum")

for problem in problems:
    print(f"  {problem}")
sys.exit(1 if problems else 0)
PY

# ---------------------------------------------------------------- taplo
# taplo's npm build is WebAssembly run by node. Node's default stack (under
# 1 MiB) is too small for the corpus's 300 nested arrays; 4 MiB is enough and
# fits the usual 8 MiB stack limit.
stack_kb=4000
stack_limit=$(ulimit -s)
if [[ $stack_limit =~ ^[0-9]+$ ]] && ((stack_limit < 6000)); then stack_kb=$((stack_limit / 2)); fi
schema_url="file://${schema// /%20}"

declare -A outcome reason
# Runs taplo once over files (absolute paths) and records each file's outcome:
# accepted, schema (refused by the schema), toml (refused as TOML: syntax,
# duplicate keys, invalid UTF-8) or other; and the first problem with its line.
# taplo stops at a crash (its parser recurses, and a few corpus files exhaust
# the WebAssembly stack); a crashed run is split in halves until the file that
# crashes it is found alone, and is recorded as crashed.
taplo_run() {
  local mode=$1
  shift
  local out="$work/taplo.out" status=0
  local options=(check --no-auto-config --colors never)
  if [[ $mode == with-schema ]]; then options+=(--schema "$schema_url"); fi
  node --stack-size="$stack_kb" "$taplo_cli" "${options[@]}" "$@" >"$out" 2>&1 || status=$?
  if ((status > 1)) || grep -qE '^(RangeError|RuntimeError|TypeError|Error): |^Node\.js v[0-9]' "$out"; then
    if (($# == 1)); then
      outcome[$1]=crashed
      reason[$1]="taplo crashed: $(grep -m1 -E '^[A-Za-z]*Error: ' "$out" || echo "exit status $status")"
      return
    fi
    local half=$(($# / 2))
    taplo_run "$mode" "${@:1:half}"
    taplo_run "$mode" "${@:half+1}"
    return
  fi
  local file
  for file in "$@"; do outcome[$file]=accepted; done
  while IFS=$'\t' read -r file kind text; do
    outcome[$file]=$kind
    reason[$file]=$text
  done < <(LC_ALL=C awk '
    function cut(s) { return length(s) > 160 ? substr(s, 1, 160) "..." : s }
    /^error: / { message = substr($0, 8); next }
    index($0, "\342\224\214\342\224\200 ") {
      where = substr($0, index($0, "\342\224\214\342\224\200 ") + 7)
      n = split(where, part, ":")
      file = substr(where, 1, length(where) - length(part[n]) - length(part[n - 1]) - 2)
      if (!(file in first)) { first[file] = part[n - 1] ":" part[n] " " message; pending[file] = (message == "invalid TOML") }
      next
    }
    /\^/ && file != "" && pending[file] {
      text = $0; sub(/^[^^]*\^+ */, "", text); first[file] = first[file] ": " text; pending[file] = 0; next
    }
    /ERROR taplo:lint_files: invalid file error=/ {
      line = $0
      sub(/.*invalid file error=/, "", line)
      at = index(line, " path=\"")
      error = substr(line, 1, at - 1)
      path = substr(line, at + 7); sub(/"$/, "", path)
      kind = error == "schema validation failed" ? "schema" : \
             (error ~ /^(syntax errors found|semantic errors found|invalid utf-8)/ ? "toml" : "other")
      text = (path in first) ? first[path] : error
      if (kind == "other") text = error
      printf "%s\t%s\t%s\n", path, kind, cut(text)
    }' "$out")
}

# ---------------------------------------------------------------- 2. good configs
echo "== good configs (taplo: @taplo/cli ${taplo_version:-?})"
good=()
for file in tests/data/configs/*.toml examples/configs/*.toml tests/data/schema/*.toml; do
  first_line=$(head -n 1 "$file")
  if [[ $first_line != "#:schema "* ]]; then
    fail "$file: its first line is not '#:schema <path to schema/provision.schema.json>' (editors find the schema by it)"
    continue
  fi
  target=${first_line#"#:schema "}
  if [[ $(realpath -m "$(dirname "$root/$file")/$target") != "$schema" ]]; then
    fail "$file: its #:schema line names $target, not the path of schema/provision.schema.json from its folder"
    continue
  fi
  good+=("$root/$file")
done

# The parser, in a fixed environment (its own variables must not decide).
parse() { env -i WORKSPACE=/workspace "$parse_config" "$1" >/dev/null 2>"$work/parse.err"; }

readme_blocks=()
declare -A readme_line parser_says
awk -v dir="$work" '
  /^```toml[ \t]*$/ { inside = 1; name = dir "/readme-" NR ".toml"; printf "" > name; next }
  /^```/ { if (inside) close(name); inside = 0; next }
  inside { print > name }' README.md
for block in "$work"/readme-*.toml; do
  [[ -e $block ]] || continue
  line=${block##*/readme-}
  readme_line[$block]=${line%.toml}
  readme_blocks+=("$block")
done
declare -A parser_refuses
for file in "${good[@]}"; do
  status=0
  parse "$file" || status=$?
  if ((status != 0)); then
    parser_refuses[$file]=1
    fail "${file#"$root/"}: the parser refuses it: $(head -n 1 "$work/parse.err" | sed "s|^$root/||")"
  fi
done
for block in "${readme_blocks[@]}"; do
  status=0
  parse "$block" || status=$?
  case $status in
    0) parser_says[$block]=accepted ;;
    2) parser_says[$block]="refused ($(head -n 1 "$work/parse.err" | sed "s|^$work/readme-[0-9]*.toml: *||" | cut -c1-120))" ;;
    *) fail "README.md:${readme_line[$block]}: examples/parse_config ended with status $status" ;;
  esac
done

# The shipped configs through their own #:schema line; the rest with --schema.
if ((${#good[@]})); then taplo_run by-directive "${good[@]}"; fi
good_accepted=0
for file in "${good[@]}"; do
  if [[ ${outcome[$file]} == accepted ]]; then
    good_accepted=$((good_accepted + 1))
    if [[ -z ${parser_refuses[$file]:-} ]]; then echo "ok    ${file#"$root/"}: the parser and the schema accept it"; fi
  elif [[ -n ${parser_refuses[$file]:-} ]]; then
    fail "${file#"$root/"}: taplo refuses it too (${outcome[$file]}): ${reason[$file]:-}"
  else
    fail "${file#"$root/"}: the parser accepts it, taplo says ${outcome[$file]}: ${reason[$file]:-}"
  fi
done

# ---------------------------------------------------------------- 3. the bad-config corpus
declare -A listed listed_why
while read -r name expected why; do
  [[ -z $name || $name == \#* ]] && continue
  if [[ ! -f tests/data/bad_configs/$name ]]; then
    fail "$cannot_express: $name is not a file of tests/data/bad_configs"
  elif [[ ! $expected =~ ^(accepted|toml|crashed)$ || -z $why ]]; then
    fail "$cannot_express: the line for $name needs an outcome (accepted, toml or crashed) and a reason"
  else
    listed[$root/tests/data/bad_configs/$name]=$expected
    listed_why[$root/tests/data/bad_configs/$name]=$why
  fi
done <"$cannot_express"

bad=() crashing=()
for file in "$root"/tests/data/bad_configs/*.toml; do
  if [[ ${listed[$file]:-} == crashed ]]; then crashing+=("$file"); else bad+=("$file"); fi
done
taplo_run with-schema "${readme_blocks[@]}" "${bad[@]}"
for file in "${crashing[@]}"; do taplo_run with-schema "$file"; done

echo "== README.md's toml blocks"
readme_agree=0
for block in "${readme_blocks[@]}"; do
  where="README.md:${readme_line[$block]}"
  said=${parser_says[$block]:-}
  [[ -z $said ]] && continue
  got=${outcome[$block]}
  if [[ $said == accepted && $got == accepted ]]; then
    readme_agree=$((readme_agree + 1))
    echo "ok    $where: the parser and the schema accept it"
  elif [[ $said != accepted && ($got == schema || $got == toml) ]]; then
    readme_agree=$((readme_agree + 1))
    echo "ok    $where: not a whole config, refused by both: parser ${said#refused }; taplo (${got}) ${reason[$block]}"
  elif [[ $said == accepted ]]; then
    fail "$where: the parser accepts it, taplo says $got: ${reason[$block]:-}"
  else
    fail "$where: the parser refuses it ${said#refused }, the schema accepts it"
  fi
done

echo "== tests/data/bad_configs (the parser refuses each)"
declare -A counted
for file in "${bad[@]}" "${crashing[@]}"; do
  name=${file#"$root/"}
  got=${outcome[$file]:-missing}
  expected_file=${file%.toml}.expected
  if [[ ! -f $expected_file ]]; then
    fail "$name: no ${expected_file##*/} beside it"
    continue
  fi
  # A syntax error (toml++'s "Error while parsing ..." or invalid UTF-8) may
  # be refused by taplo either way; any other refusal must be the schema's.
  diagnostics=$(grep -v -e '^#' -e '^!' -e '^$' "$expected_file" | sed -E 's/^-?[0-9]+:-?[0-9]+: //')
  kind=config
  if [[ -n $diagnostics ]] && ! grep -qv -e '^Error while parsing' -e '^Encountered invalid' <<<"$diagnostics"; then
    kind=syntax
  fi
  if [[ -n ${listed[$file]:-} ]]; then
    if [[ $got == "${listed[$file]}" ]]; then
      counted[listed]=$((${counted[listed]:-0} + 1))
      echo "ok    $name: taplo: $got, as $cannot_express says (${listed_why[$file]})"
    elif [[ $got == schema ]]; then
      fail "$name: the schema now refuses it (${reason[$file]}); remove it from $cannot_express"
    else
      fail "$name: $cannot_express says taplo's outcome is ${listed[$file]}, it is $got ${reason[$file]:-}"
    fi
  elif [[ $got == schema ]]; then
    counted[schema]=$((${counted[schema]:-0} + 1))
    echo "ok    $name: refused by the schema (${reason[$file]})"
  elif [[ $got == toml && $kind == syntax ]]; then
    counted[toml]=$((${counted[toml]:-0} + 1))
    echo "ok    $name: refused as TOML (${reason[$file]})"
  elif [[ $got == accepted ]]; then
    fail "$name: the parser refuses it ($(grep -m1 -v -e '^#' -e '^!' -e '^$' "$expected_file" | cut -c1-120)), the schema accepts it; make the schema refuse it, or list it in $cannot_express with the reason"
  else
    fail "$name: the parser refuses it by its own rules, but taplo's outcome is $got (${reason[$file]:-}), not the schema's refusal"
  fi
done

echo "== summary"
echo "schema/provision.schema.json against the parser, by taplo (@taplo/cli ${taplo_version:-?}):" \
  "${good_accepted}/${#good[@]} good configs accepted," \
  "${readme_agree}/${#readme_blocks[@]} README blocks judged alike," \
  "$((${counted[schema]:-0} + ${counted[toml]:-0}))/$((${#bad[@]} + ${#crashing[@]})) bad configs refused" \
  "(${counted[schema]:-0} by the schema, ${counted[toml]:-0} as bad TOML)," \
  "${counted[listed]:-0} beyond the schema as listed in $cannot_express"
if ((${#failures[@]})); then
  echo "${#failures[@]} disagreement(s):"
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
echo "no disagreements"
