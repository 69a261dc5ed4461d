#!/usr/bin/env bash
# The firmware-bridge core on bare-metal Cortex-M: flash and RAM per file, and the worst-case
# stack of each public function, as firmware authors budget them (the table's layout follows
# coreMQTT's docs/doxygen/include/size_table.md).
#
#   firmware-bridge/scripts/size-table.sh            # prints the table (Markdown) on stdout
#   firmware-bridge/scripts/size-table.sh --write    # and writes it to firmware-bridge/docs/size-table.md
#
# Each core file is compiled alone with arm-none-eabi-gcc -std=c99 -Os -mthumb for Cortex-M0+
# and Cortex-M4 (-ffunction-sections, as a firmware link with --gc-sections uses it); flash =
# text + data, RAM = data + bss (arm-none-eabi-size). The crypto backend (PSA Crypto) is not
# part of the core: on an MCU it is the vendor's (PROTOCOL.md, README porting guide).
#
# Stack: GCC's -fstack-usage gives each function's own frame and -fcallgraph-info=su the calls
# it makes; the worst case of a public function is the deepest path through that graph. Calls
# through the injected interfaces (crypto, storage, clock) are indirect: the figure is the
# library's part, to which the port adds the deepest of its own interface functions. A cycle
# (recursion) or a frame GCC reports as dynamic is shown as such, never as a number.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
write=0
[ "${1:-}" = "--write" ] && write=1
for tool in arm-none-eabi-gcc arm-none-eabi-size; do
  command -v "$tool" >/dev/null || { echo "size-table: $tool is missing: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi" >&2; exit 2; }
done

# The core: the files CMakeLists.txt lists in FB_CORE_SOURCES (the crypto backend is not one).
mapfile -t sources < <(sed -n '/^set(FB_CORE_SOURCES/,/CACHE/p' "$here/CMakeLists.txt" | grep -o -E 'src/[A-Za-z0-9_]+\.c' | sed 's|^src/||')
[ ${#sources[@]} -gt 0 ] || { echo "size-table: no FB_CORE_SOURCES in $here/CMakeLists.txt" >&2; exit 2; }
for source in "${sources[@]}"; do
  [ -f "$here/src/$source" ] || { echo "size-table: $here/src/$source (in FB_CORE_SOURCES) is missing" >&2; exit 2; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cpus=(cortex-m0plus cortex-m4)
for cpu in "${cpus[@]}"; do
  mkdir -p "$work/$cpu"
  for source in "${sources[@]}"; do
    arm-none-eabi-gcc -std=c99 -mcpu="$cpu" -mthumb -Os -ffunction-sections -fdata-sections \
      -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Werror \
      -fstack-usage -fcallgraph-info=su -I "$here/include" -c "$here/src/$source" -o "$work/$cpu/${source%.c}.o"
  done
done

# arm-none-eabi-size -B: text data bss dec hex filename
sizes() { arm-none-eabi-size -B "$work/$1/${2%.c}.o" | awk 'NR==2 { print $1 + $2, $2 + $3 }'; }

# One table row: bytes shown as KiB with one decimal, and exactly.
row() { awk -v f="$1" -v a="$2" -v b="$3" -v r="$4" 'BEGIN { printf "| %s | %.1f K (%d) | %.1f K (%d) | %d |\n", f, a / 1024, a, b / 1024, b, r }'; }

# Worst-case stack of every function defined in the core, from the call graphs of one CPU
# ("name<TAB>bytes[ + marks]"). An indirect call inside the library reaches one of its own
# callbacks — a static function of the same file that nothing calls directly (its address is
# passed) — so the deepest of those is added; the port's interface functions (crypto, storage,
# clock, the SLIP byte sink) are not in the core: such paths are marked "+ indirect".
stack_of() {
  cat "$work/$1"/*.ci | awk '
    /^node:/ {
      title = $0; sub(/.*title: "/, "", title); sub(/".*/, "", title)
      if (match($0, /\\n[^\\]+:[0-9]+:[0-9]+\\n[0-9]+ bytes \([a-z,]+\)/)) {
        s = substr($0, RSTART + 2, RLENGTH - 2)
        where = s; sub(/:[0-9]+:[0-9]+\\n.*/, "", where)
        bytes = s; sub(/.*\\n/, "", bytes); split(bytes, p, " ")
        own[title] = p[1]; kind[title] = p[3]; gsub(/[()]/, "", kind[title]); defined[title] = 1; file[title] = where
      }
    }
    /^edge:/ {
      from = $0; sub(/.*sourcename: "/, "", from); sub(/".*/, "", from)
      to = $0; sub(/.*targetname: "/, "", to); sub(/".*/, "", to)
      n[from]++; callee[from, n[from]] = to; called[to] = 1
    }
    function deepest(f, via,    i, d, best, c, g) {
      if (f == "__indirect_call") {
        indirect = 1; best = 0
        for (g in defined) if (index(g, ":") > 0 && !(g in called) && file[g] == file[via] && !(g in onpath)) { d = deepest(g, g); if (d > best) best = d }
        return best
      }
      if (!(f in defined)) return 0     # libc (memcpy, memset): not the library
      if (f in onpath) { cyclic = 1; return 0 }
      if (kind[f] !~ /^static/) dynamic = 1
      onpath[f] = 1; best = 0
      for (i = 1; i <= n[f]; i++) { d = deepest(callee[f, i], f); if (d > best) best = d }
      delete onpath[f]
      return own[f] + best
    }
    END {
      for (f in defined) {
        if (index(f, ":") > 0) continue  # static: not public
        indirect = 0; cyclic = 0; dynamic = 0
        d = deepest(f, f)
        note = ""
        if (indirect) note = note " + indirect"
        if (cyclic) note = note " + RECURSION"
        if (dynamic) note = note " + DYNAMIC"
        print f "\t" d note
      }
    }'
}

{
  echo "# firmware-bridge core: code size and stack on Cortex-M"
  echo
  echo "Produced by \`firmware-bridge/scripts/size-table.sh --write\` with $(arm-none-eabi-gcc --version | head -1),"
  echo "\`-std=c99 -Os -mthumb -ffunction-sections -fdata-sections\`, each file compiled alone (object sizes, before"
  echo "the firmware's own link drops unused functions with \`--gc-sections\`). Flash = text + data, RAM = data + bss:"
  echo "static RAM only — the library has no heap and no global mutable state; the caller owns the context and"
  echo "buffers (their sizes are in the README). The crypto backend is not in these figures (on an MCU it is"
  echo "the vendor's PSA Crypto or AES engine)."
  echo
  echo "| File | Cortex-M0+ flash | Cortex-M4 flash | RAM |"
  echo "|---|---:|---:|---:|"
  total_m0=0; total_m4=0; total_ram=0
  for source in "${sources[@]}"; do
    read -r m0 _ < <(sizes cortex-m0plus "$source")
    read -r m4 ram < <(sizes cortex-m4 "$source")
    total_m0=$((total_m0 + m0)); total_m4=$((total_m4 + m4)); total_ram=$((total_ram + ram))
    row "$source" "$m0" "$m4" "$ram"
  done
  row "**Total**" "$total_m0" "$total_m4" "$total_ram"
  echo
  echo "Budget (issue #14): core ≤ 8 KB flash on Cortex-M4 at -Os, zero heap, ≤ 1 KB stack."
  echo
  echo "## Worst-case stack of each public function (bytes)"
  echo
  echo "The deepest call path inside the library (GCC \`-fstack-usage\`, \`-fcallgraph-info=su\`), the library's own"
  echo "callbacks included. \"+ indirect\": the path also calls through a function pointer that may be the port's —"
  echo "an injected interface (crypto, storage, clock) or the SLIP byte sink: add the deepest such function of"
  echo "your port (the PSA backend's own stack is Mbed TLS's). libc calls (memcpy, memset) are not counted."
  echo
  echo "| Function | Cortex-M0+ | Cortex-M4 |"
  echo "|---|---:|---:|"
  # Public functions: the fb_ names declared in the headers.
  mapfile -t public < <(grep -h -o -E '\bfb_[a-z0-9_]+ *\(' "$here"/include/fb/*.h | tr -d ' (' | sort -u)
  stack_of cortex-m0plus | sort > "$work/stack-m0"
  stack_of cortex-m4 | sort > "$work/stack-m4"
  for f in "${public[@]}"; do
    m0="$(awk -F '\t' -v f="$f" '$1 == f { print $2 }' "$work/stack-m0")"
    m4="$(awk -F '\t' -v f="$f" '$1 == f { print $2 }' "$work/stack-m4")"
    [ -n "$m4" ] || continue # declared but inline, a macro, or a backend's function
    echo "| \`$f\` | $m0 | $m4 |"
  done
} > "$work/table.md"

cat "$work/table.md"
if [ "$write" = 1 ]; then
  mkdir -p "$here/docs"
  cp "$work/table.md" "$here/docs/size-table.md"
  echo "size-table: wrote $here/docs/size-table.md" >&2
fi
