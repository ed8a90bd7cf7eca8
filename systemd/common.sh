# Shared by install.sh and uninstall.sh (sourced; set SCRIPT_NAME and DESTDIR first).

step() {
  printf 'trustpile %s: %s\n' "$SCRIPT_NAME" "$*"
}

die() {
  printf 'trustpile %s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

# Runs a shadow-utils tool (useradd, groupadd, usermod, userdel, groupdel) on $DESTDIR/etc/{passwd,group,shadow,
# gshadow} when DESTDIR is set, else on the live system.
shadow_tool() {
  tool=$1
  shift
  if [ -n "$DESTDIR" ]; then
    "$tool" --prefix "$DESTDIR" "$@"
  else
    "$tool" "$@"
  fi
}
