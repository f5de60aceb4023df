# Sets recipe variables from --name value pairs; source it after the defaults:
#   . "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"
# Only variables the recipe already defines may be set (--stop_stage 3 sets stop_stage=3); an
# unknown option or a missing value stops the recipe with a message.
while [ $# -gt 0 ]; do
  case "$1" in
    --*) name=${1#--}; [ $# -ge 2 ] || { echo "missing value for $1" >&2; exit 1; }
         declare -p "$name" >/dev/null 2>&1 || { echo "unknown option $1" >&2; exit 1; }
         printf -v "$name" '%s' "$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done
