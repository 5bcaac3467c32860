#!/usr/bin/env bash
# The rooms of the source tree (docs/architecture.md) form a stack: a file may include headers of
# its own room and of rooms below it, never above. Fails naming every upward include.
#   bash tests/layering/check_rooms.sh SOURCE_DIR
set -euo pipefail
src=${1:-$(dirname "$0")/../..}
cd "$src"
order=(util data dist batch linalg models eval export train serve apps)
rank() {
  local i
  for i in "${!order[@]}"; do [[ ${order[$i]} == "$1" ]] && { echo "$i"; return; }; done
  echo -1
}
bad=0 files=0
while IFS= read -r f; do
  files=$((files + 1))
  room=$(sed -E 's#^(src|include/recvae)/([^/]+)/.*#\2#' <<<"$f")
  r=$(rank "$room")
  if [[ $r -lt 0 ]]; then echo "check_rooms: $f is in no known room ($room)"; bad=1; continue; fi
  while IFS= read -r dep; do
    d=$(rank "$dep")
    if [[ $d -lt 0 || $d -gt $r ]]; then
      echo "check_rooms: $f ($room) includes recvae/$dep/: an upward arrow"
      bad=1
    fi
  done < <(grep -oE '#include "recvae/[a-z_]+/' "$f" | sed -E 's#.*recvae/([a-z_]+)/#\1#' | sort -u)
done < <(find src include/recvae -mindepth 2 \( -name '*.cpp' -o -name '*.h' \) | sort)
if [[ $files -eq 0 ]]; then echo "check_rooms: no sources found under $src"; exit 1; fi
if [[ $bad -ne 0 ]]; then exit 1; fi
echo "check_rooms: $files files, every include points to its own room or one below (${order[*]})"
