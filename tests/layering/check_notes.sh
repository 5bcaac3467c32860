#!/usr/bin/env bash
# Every named-note reference in the code or the docs (the word Note, then the name in brackets) is
# written once as a note in the sources (a comment line over a "// ~~~" line). Fails naming each problem.
#   bash tests/layering/check_notes.sh SOURCE_DIR
set -euo pipefail
cd "${1:-$(dirname "$0")/../..}"
defined=$(grep -rh -A1 --include='*.cpp' --include='*.h' '^// Note \[' src include | grep -B1 '^// ~~~' |
          grep -oE 'Note \[[^]]+\]' | sort)
doubled=$(uniq -d <<<"$defined")
bad=0
if [[ -n $doubled ]]; then echo "check_notes: written more than once: $doubled"; bad=1; fi
while IFS= read -r ref; do
  grep -qxF "$ref" <<<"$defined" || { echo "check_notes: '$ref' is referred to but written nowhere"; bad=1; }
done < <(grep -rhoE 'Note \[[^]]+\]' src include tests docs README.md configs | sort -u)
[[ $bad -eq 0 ]] || exit 1
echo "check_notes: $(wc -l <<<"$defined") notes, every reference resolves"
