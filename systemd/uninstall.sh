#!/bin/sh
# Removes what systemd/install.sh installed. Run as root:
#
#   sudo systemd/uninstall.sh            stop and disable the service; remove the unit, the udev rule, the program
#                                        and the trustpile link. KEEPS /etc/trustpile (config and the device key)
#                                        and /var/lib/trustpile (the journal) and the user trustpile.
#   sudo systemd/uninstall.sh --purge    also delete /etc/trustpile, /var/lib/trustpile and the user trustpile.
#                                        The device key is gone for good: move its funds off the chain first.
#
# DESTDIR and PREFIX as for install.sh. systemd is touched only on the live system (DESTDIR empty).
set -eu

DESTDIR="${DESTDIR:-}"
PREFIX="${PREFIX:-/usr}"
SERVICE_USER=trustpile

APPDIR="$DESTDIR$PREFIX/lib/trustpile"
BINLINK="$DESTDIR$PREFIX/bin/trustpile"
DOCDIR="$DESTDIR$PREFIX/share/doc/trustpile"
ETCDIR="$DESTDIR/etc/trustpile"
STATEDIR="$DESTDIR/var/lib/trustpile"
UNIT="$DESTDIR/lib/systemd/system/trustpile.service"
UDEVRULE="$DESTDIR/etc/udev/rules.d/99-trustpile-rs485.rules"

SCRIPT_NAME=uninstall
# shellcheck source=systemd/common.sh
. "$(dirname "$0")/common.sh"

in_file() {
  grep -q "^$2:" "$DESTDIR/etc/$1" 2>/dev/null
}

PURGE=
case "${1:-}" in
  "") ;;
  --purge) PURGE=1 ;;
  *) die "usage: $0 [--purge]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"

LIVE=
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then LIVE=1; fi

if [ "$LIVE" = 1 ]; then
  # The unit's ExecStopPost opens the relay as the service stops.
  if systemctl disable --now trustpile 2>/dev/null; then
    step "service stopped and disabled"
  else
    step "service was not loaded; nothing to stop"
  fi
else
  step "systemd not touched (DESTDIR set or systemd not running); on the target run: systemctl disable --now trustpile"
fi

rm -f "$UNIT"
step "removed the unit /lib/systemd/system/trustpile.service"
rm -f "$UDEVRULE"
step "removed the udev rule /etc/udev/rules.d/99-trustpile-rs485.rules"
if [ -L "$BINLINK" ]; then
  rm -f "$BINLINK"
  step "removed the link $BINLINK"
elif [ -e "$BINLINK" ]; then
  step "left $BINLINK alone: it is not the link install.sh makes"
fi
rm -rf "$APPDIR" "$APPDIR.new" "$DOCDIR"
step "removed the program $APPDIR and $DOCDIR"

if [ "$LIVE" = 1 ]; then
  systemctl daemon-reload
  if command -v udevadm >/dev/null 2>&1; then udevadm control --reload || true; fi
  step "systemd and udev reloaded"
fi

if [ "$PURGE" = 1 ]; then
  rm -rf "$ETCDIR" "$STATEDIR"
  step "--purge: deleted /etc/trustpile (config, device key) and /var/lib/trustpile (journal)"
  if in_file passwd "$SERVICE_USER"; then
    shadow_tool userdel "$SERVICE_USER"
    step "--purge: deleted the user $SERVICE_USER"
  fi
  if in_file group "$SERVICE_USER"; then
    shadow_tool groupdel "$SERVICE_USER"
    step "--purge: deleted the group $SERVICE_USER"
  fi
  step "kept the shared groups gpio and dialout"
else
  step "KEPT /etc/trustpile (config, device key), /var/lib/trustpile (journal) and the user $SERVICE_USER; '$0 --purge' deletes them"
fi
step "done"
