#!/usr/bin/env bash
# The firmware-bridge core on bare-metal Cortex-M: flash and RAM per file, and the worst-case
# stack of each public function, as firmware authors budget them (the table's layout follows
# coreMQTT's docs/doxygen/include/size_table.md).
#
#   firmware-bridge/scripts/size-table.sh            # prints the table (Markdown) on stdout
#   firmware-bridge/scripts/size-table.sh --write    # and writes it to firmware-bridge/docs/size-table.md
#                                                    # and the README's table
#
# Exit 0 when the core is within the budget of issue #14, 1 when it is not (each excess named
# on stderr; the table is printed, and written with --write, either way), 2 for a missing tool:
#   - flash: the Cortex-M4 total at -Os at most FB_FLASH_BUDGET (8192) bytes;
#   - stack: every public function's worst case at most FB_STACK_BUDGET (1024) bytes on both
#     CPUs, and bounded (no recursion, no dynamic frame);
#   - RAM: no static RAM (data + bss 0) on either CPU, and no heap: the objects call nothing
#     but each other, memcpy/memmove/memset/memcmp and the compiler's runtime (__aeabi_*).
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
FB_FLASH_BUDGET=8192 # issue #14: core <= 8 KB flash on Cortex-M4 at -Os
FB_STACK_BUDGET=1024 # issue #14: <= 1 KB stack
write=0
[ "${1:-}" = "--write" ] && write=1
for tool in arm-none-eabi-gcc arm-none-eabi-size arm-none-eabi-nm; do
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

# The optional status names (fb_config.h: FB_CONFIG_STATUS_NAMES, 0 by default): what they add,
# shown next to the table (the budget is checked on the default configuration).
for cpu in "${cpus[@]}"; do
  arm-none-eabi-gcc -std=c99 -mcpu="$cpu" -mthumb -Os -ffunction-sections -fdata-sections \
    -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Werror -DFB_CONFIG_STATUS_NAMES=1 \
    -I "$here/include" -c "$here/src/fb_status.c" -o "$work/$cpu-status-names.o"
done

# arm-none-eabi-size -B: text data bss dec hex filename
sizes() { arm-none-eabi-size -B "$work/$1/${2%.c}.o" | awk 'NR==2 { print $1 + $2, $2 + $3 }'; }
flash_of() { arm-none-eabi-size -B "$1" | awk 'NR==2 { print $1 + $2 }'; }

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

# Sizes per file, totals, and the stack figures: measured first, then checked and printed.
total_m0=0; total_m4=0; ram_m0=0; ram_m4=0
rows=()
for source in "${sources[@]}"; do
  read -r m0 r0 < <(sizes cortex-m0plus "$source")
  read -r m4 r4 < <(sizes cortex-m4 "$source")
  total_m0=$((total_m0 + m0)); total_m4=$((total_m4 + m4)); ram_m0=$((ram_m0 + r0)); ram_m4=$((ram_m4 + r4))
  rows+=("$(row "$source" "$m0" "$m4" "$r4")")
done
# Public functions: the fb_ names declared in the headers.
mapfile -t public < <(grep -h -o -E '\bfb_[a-z0-9_]+ *\(' "$here"/include/fb/*.h | tr -d ' (' | sort -u)
stack_of cortex-m0plus | sort > "$work/stack-m0"
stack_of cortex-m4 | sort > "$work/stack-m4"
stack_rows=()
deepest_m4=0; deepest_fn=""
over=() # the budget's excesses, one line each
for f in "${public[@]}"; do
  m0="$(awk -F '\t' -v f="$f" '$1 == f { print $2 }' "$work/stack-m0")"
  m4="$(awk -F '\t' -v f="$f" '$1 == f { print $2 }' "$work/stack-m4")"
  [ -n "$m4" ] || continue # declared but inline, a macro, or a backend's function
  stack_rows+=("| \`$f\` | $m0 | $m4 |")
  for figure in "cortex-m0plus:$m0" "cortex-m4:$m4"; do
    cpu="${figure%%:*}"; value="${figure#*:}"
    case "$value" in *RECURSION* | *DYNAMIC*) over+=("stack of $f on $cpu is unbounded ($value)") ;; esac
    bytes="${value%% *}"
    if [ "$bytes" -gt "$FB_STACK_BUDGET" ]; then over+=("stack of $f on $cpu is $bytes bytes, budget $FB_STACK_BUDGET"); fi
  done
  bytes="${m4%% *}"
  if [ "$bytes" -gt "$deepest_m4" ]; then deepest_m4="$bytes"; deepest_m0="${m0%% *}"; deepest_fn="$f"; fi
done
if [ "$total_m4" -gt "$FB_FLASH_BUDGET" ]; then
  over+=("flash of the core on cortex-m4 is $total_m4 bytes, budget $FB_FLASH_BUDGET")
fi
[ "$ram_m0" -eq 0 ] || over+=("static RAM (data + bss) of the core on cortex-m0plus is $ram_m0 bytes, budget 0")
[ "$ram_m4" -eq 0 ] || over+=("static RAM (data + bss) of the core on cortex-m4 is $ram_m4 bytes, budget 0")
# No heap, no other library: every symbol the objects leave undefined is the core's own (fb_),
# one of the four <string.h> functions the README names, or the compiler's runtime.
for cpu in "${cpus[@]}"; do
  while read -r symbol; do
    case "$symbol" in
      fb_* | memcpy | memmove | memset | memcmp | __aeabi_* | __gnu_*) ;;
      *) over+=("the core calls $symbol on $cpu: only memcpy, memmove, memset and memcmp are allowed (no heap)") ;;
    esac
  done < <(arm-none-eabi-nm -u "$work/$cpu"/*.o | awk 'NF == 2 && $1 == "U" { print $2 }' | sort -u)
done
for cpu in "${cpus[@]}"; do
  # An fb_ symbol no core object defines is outside the counted core (e.g. the crypto backend).
  while read -r symbol; do
    over+=("the core calls $symbol on $cpu, which no core file defines")
  done < <(comm -23 <(arm-none-eabi-nm -u "$work/$cpu"/*.o | awk '$1 == "U" && $2 ~ /^fb_/ { print $2 }' | sort -u) \
                    <(arm-none-eabi-nm --defined-only "$work/$cpu"/*.o | awk 'NF == 3 && $2 ~ /^[TDRB]$/ { print $3 }' | sort -u))
done
names_m0=$(( $(flash_of "$work/cortex-m0plus-status-names.o") - $(flash_of "$work/cortex-m0plus/fb_status.o") ))
names_m4=$(( $(flash_of "$work/cortex-m4-status-names.o") - $(flash_of "$work/cortex-m4/fb_status.o") ))
verdict="within it"
[ ${#over[@]} -eq 0 ] || verdict="**over it**: $(IFS=';'; echo "${over[*]}" | sed 's/;/; /g')"

# The per-file table and its summary (also the README's, between its size-table markers).
{
  echo "| File | Cortex-M0+ flash | Cortex-M4 flash | RAM |"
  echo "|---|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  row "**Total**" "$total_m0" "$total_m4" "$ram_m4"
  echo
  echo "Core: **$total_m4 bytes of flash on Cortex-M4** (budget $FB_FLASH_BUDGET) and $total_m0 on Cortex-M0+, no static RAM, no heap;"
  echo "the deepest public function, \`$deepest_fn\`, needs $deepest_m4 bytes of stack on Cortex-M4 ($deepest_m0 on M0+)"
  echo "plus the port's interface functions it calls."
} > "$work/files.md"

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
  cat "$work/files.md"
  echo
  echo "Budget (issue #14, checked by this script: it exits 1 when over): core ≤ $FB_FLASH_BUDGET bytes of flash on"
  echo "Cortex-M4 at -Os, no static RAM and no heap, ≤ $FB_STACK_BUDGET bytes of stack per public function. The core is $verdict."
  echo
  echo "The figures are fb_config.h's defaults. \`-DFB_CONFIG_STATUS_NAMES=1\` (\`fb_status_name\` gives every status's"
  echo "name, not only \`FB_OK\`, \`FB_AGAIN\` or \`FB_ERR\`; the CMake build's default for the host) adds $names_m0 bytes on"
  echo "Cortex-M0+ and $names_m4 on Cortex-M4: $((total_m0 + names_m0)) and $((total_m4 + names_m4)) bytes in all."
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
  printf '%s\n' "${stack_rows[@]}"
} > "$work/table.md"

cat "$work/table.md"
if [ "$write" = 1 ]; then
  mkdir -p "$here/docs"
  cp "$work/table.md" "$here/docs/size-table.md"
  echo "size-table: wrote $here/docs/size-table.md" >&2
  readme="$here/README.md"
  begin='<!-- size-table.sh: begin -->'; end='<!-- size-table.sh: end -->'
  if grep -q -F -x "$begin" "$readme" && grep -q -F -x "$end" "$readme"; then
    awk -v begin="$begin" -v end="$end" -v files="$work/files.md" '
      $0 == begin { print; while ((getline line < files) > 0) print line; skip = 1; next }
      $0 == end { skip = 0 }
      !skip { print }' "$readme" > "$work/README.md"
    cp "$work/README.md" "$readme"
    echo "size-table: wrote the table in $readme" >&2
  else
    echo "size-table: $readme has no lines '$begin' and '$end': its table is not updated" >&2
    exit 2
  fi
fi
echo "size-table: core $total_m4 bytes of flash on cortex-m4 ($total_m0 on cortex-m0plus), deepest stack $deepest_m4 bytes ($deepest_fn)" >&2
if [ ${#over[@]} -gt 0 ]; then
  for line in "${over[@]}"; do echo "size-table: over budget (issue #14): $line" >&2; done
  exit 1
fi
