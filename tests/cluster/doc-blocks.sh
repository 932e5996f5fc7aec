#!/usr/bin/env bash
# Prints the fenced code blocks of a Markdown file whose fence names LANG (```sh, ```cpp), so
# that tests run exactly what the docs show.
#
#   doc-blocks.sh FILE LANG                 each block, after a line "@@block LINE" (the line
#                                           its fence opens on)
#   doc-blocks.sh FILE LANG TEXT [OUT]      only the code of the blocks that contain TEXT, into
#                                           OUT if given (the build extracts the SDK example)
set -eu -o pipefail
file=$1 lang=$2 containing=${3-} out=${4-/dev/stdout}
awk -v lang="$lang" -v containing="$containing" -v marked="${3+x}" '
  $0 == "```" lang { inside = 1; start = NR; code = ""; next }
  inside && $0 == "```" {
    inside = 0
    if (marked == "") { printf "@@block %d\n%s", start, code }
    else if (index(code, containing) > 0) { printf "%s", code }
    next
  }
  inside { code = code $0 "\n" }
  END {
    if (inside) { print "unterminated ```" lang " block at line " start > "/dev/stderr"; exit 1 }
  }
' "$file" > "$out"
