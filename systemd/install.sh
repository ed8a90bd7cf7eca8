#!/bin/sh
# Installs trustpile from this checkout as a systemd service (DESIGN §1, issue 10). Run as root:
#
#   sudo systemd/install.sh
#
# Environment:
#   DESTDIR              install below this directory instead of the live system (packaging, tests). Accounts are
#                        then created in $DESTDIR/etc/passwd and group (shadow-utils --prefix), and systemd is left
#                        alone. Default: empty, the live system.
#   PREFIX               where the program goes: $PREFIX/lib/trustpile, $PREFIX/bin/trustpile. Default: /usr.
#   TRUSTPILE_SKIP_NPM=1   do not run npm in the installed copy (tests; packages that vendor node_modules).
#   TRUSTPILE_SKIP_USER=1  do not create the trustpile user and groups (a package creates them in its postinst).
#
# What it does, one line per step: copies the runtime files to $PREFIX/lib/trustpile and installs the production
# dependencies there (no dev or optional packages: no anvil, forge or vitest on the pile); links
# $PREFIX/bin/trustpile; creates the system user trustpile (groups gpio and dialout); creates /etc/trustpile and
# /var/lib/trustpile; writes the commented config template /etc/trustpile/config.yaml (never over an existing one);
# installs the unit and an example udev rule for a USB RS-485 adapter; enables the service. Run it again to
# upgrade: the program is replaced, the config, the device key and the journal are kept.
set -eu

DESTDIR="${DESTDIR:-}"
PREFIX="${PREFIX:-/usr}"
SKIP_NPM="${TRUSTPILE_SKIP_NPM:-}"
SKIP_USER="${TRUSTPILE_SKIP_USER:-}"

SRC=$(cd "$(dirname "$0")/.." && pwd)
APPDIR="$DESTDIR$PREFIX/lib/trustpile"
BINLINK="$DESTDIR$PREFIX/bin/trustpile"
DOCDIR="$DESTDIR$PREFIX/share/doc/trustpile"
ETCDIR="$DESTDIR/etc/trustpile"
STATEDIR="$DESTDIR/var/lib/trustpile"
UNIT="$DESTDIR/lib/systemd/system/trustpile.service"
UDEVRULE="$DESTDIR/etc/udev/rules.d/99-trustpile-rs485.rules"
SERVICE_USER=trustpile

SCRIPT_NAME=install
# shellcheck source=systemd/common.sh
. "$(dirname "$0")/common.sh"

# Prints field $2 (3: uid or gid, 4: primary gid) of entry $3 in $DESTDIR/etc/$1 (passwd or group), or nothing.
account_field() {
  awk -F: -v name="$3" -v field="$2" '$1 == name { print $field; exit }' "$DESTDIR/etc/$1" 2>/dev/null || true
}

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0): it creates a system user and sets file owners"

for required in package.json package-lock.json bin/trustpile.js agent drivers hw-sim contracts/artifacts \
  tsconfig.json tsconfig.build.json agent/config/example.yaml systemd/trustpile.service systemd/99-trustpile-rs485.rules; do
  [ -e "$SRC/$required" ] || die "$SRC/$required is missing: run this script from a complete trustpile checkout"
done

step "installing from $SRC into ${DESTDIR:-the live system} (PREFIX=$PREFIX)"

# ---- the program --------------------------------------------------------------------------------------------------
# Staged next to the final directory and swapped in at the end, so a failed npm run leaves the old copy working.
STAGE="$APPDIR.new"
rm -rf "$STAGE"
mkdir -p "$STAGE/contracts"
# -p keeps the modification times: bin/trustpile.js runs dist/ only while dist/BUILD_STAMP is newer than every
# source file, so the copy must not make the sources look newer than the build.
cp -Rp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/bin" "$SRC/agent" "$SRC/drivers" "$SRC/hw-sim" "$STAGE/"
cp -Rp "$SRC/contracts/artifacts" "$STAGE/contracts/"
# dist/ (the agent compiled to JavaScript) is copied only while it is newer than every source, like bin/trustpile.js
# decides; otherwise it is compiled in the installed copy after npm below.
DIST_FRESH=
if [ -f "$SRC/dist/BUILD_STAMP" ] &&
  [ -z "$(cd "$SRC" && find agent drivers hw-sim contracts/artifacts -name '*.ts' -newer dist/BUILD_STAMP | head -n 1)" ]; then
  cp -Rp "$SRC/dist" "$STAGE/"
  DIST_FRESH=1
  step "copied the program with its compiled dist/ to $APPDIR"
else
  step "copied the program to $APPDIR (the checkout has no up-to-date dist/: it is compiled after npm)"
fi
chown -R 0:0 "$STAGE"
chmod -R u+rwX,go+rX,go-w "$STAGE"
chmod 0755 "$STAGE/bin/trustpile.js"

if [ "$SKIP_NPM" = 1 ]; then
  step "TRUSTPILE_SKIP_NPM=1: not installing node_modules in $APPDIR (the program cannot run until 'npm ci --omit=dev --omit=optional --ignore-scripts && npm rebuild' is run there)"
else
  command -v npm >/dev/null 2>&1 || die "npm not found: apt-get install -y nodejs npm (Node.js 20.11 or newer)"
  step "installing production dependencies in $APPDIR (npm ci --omit=dev --omit=optional; compiling native modules may take minutes)"
  # --omit=dev --omit=optional: nothing the pile does not need (no anvil, forge, vitest, type packages).
  # --ignore-scripts, then `npm rebuild`: the dependencies' install scripts run (native modules), but not the
  # checkout's own `prepare` (tools/build.js), which needs the dev-only TypeScript type packages; dist/ is
  # copied above or compiled below instead.
  # better-sqlite3 (the journal) and epoll (onoff's GPIO interrupts) are native modules. better-sqlite3 downloads a
  # prebuilt binary when one exists for this Node.js and CPU (arm64, armhf); otherwise it compiles SQLite on the
  # Pi, which needs `apt-get install -y build-essential python3` and takes a few minutes. epoll always compiles.
  (cd "$STAGE" && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error &&
    npm rebuild --loglevel=error) ||
    die "npm failed in $STAGE (missing compiler? apt-get install -y build-essential python3); the previous install, if any, is untouched"
  if [ -z "$DIST_FRESH" ]; then
    # The checkout's `npm run build` type-checks, which needs the dev-only type packages; the pile only needs the
    # emitted JavaScript, which is the same without the check (tsc's noCheck) and without @types/node.
    step "compiling the agent to $APPDIR/dist (tsc, no type check)"
    cp "$SRC/tsconfig.json" "$SRC/tsconfig.build.json" "$STAGE/"
    printf '%s\n' '{ "extends": "./tsconfig.build.json", "compilerOptions": { "types": [], "noCheck": true } }' \
      >"$STAGE/tsconfig.pile.json"
    (cd "$STAGE" && node node_modules/typescript/bin/tsc -p tsconfig.pile.json) ||
      die "compiling the agent failed in $STAGE; the previous install, if any, is untouched"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$STAGE/dist/BUILD_STAMP"
    rm -f "$STAGE/tsconfig.json" "$STAGE/tsconfig.build.json" "$STAGE/tsconfig.pile.json"
  fi
  chown -R 0:0 "$STAGE"
fi
if [ -z "$DIST_FRESH" ] && [ ! -f "$STAGE/dist/BUILD_STAMP" ]; then
  step "WARNING: no compiled dist/: the pile will run the TypeScript sources through tsx (about 45 MB more memory); install again without TRUSTPILE_SKIP_NPM"
fi

rm -rf "$APPDIR"
mv "$STAGE" "$APPDIR"
step "program installed in $APPDIR"

mkdir -p "$(dirname "$BINLINK")"
ln -sfn ../lib/trustpile/bin/trustpile.js "$BINLINK"
step "linked $BINLINK -> ../lib/trustpile/bin/trustpile.js"

mkdir -p "$DOCDIR"
install -m 0644 "$SRC/README.md" "$DOCDIR/README.md"
step "installed the README to $DOCDIR/README.md"

# ---- the service user -----------------------------------------------------------------------------------------------
if [ "$SKIP_USER" = 1 ]; then
  step "WARNING: TRUSTPILE_SKIP_USER=1: NOT creating the user $SERVICE_USER or the groups gpio, dialout, $SERVICE_USER; the service cannot start until they exist"
else
  if [ -n "$DESTDIR" ] && { [ ! -f "$DESTDIR/etc/passwd" ] || [ ! -f "$DESTDIR/etc/group" ]; }; then
    die "$DESTDIR/etc/passwd or $DESTDIR/etc/group is missing: seed them, or set TRUSTPILE_SKIP_USER=1 and create the user elsewhere"
  fi
  for group in gpio dialout "$SERVICE_USER"; do
    if [ -n "$(account_field group 3 "$group")" ]; then
      step "group $group exists (gid $(account_field group 3 "$group"))"
    else
      shadow_tool groupadd --system "$group"
      step "created the system group $group (gid $(account_field group 3 "$group"))"
    fi
  done
  if [ -n "$(account_field passwd 3 "$SERVICE_USER")" ]; then
    shadow_tool usermod --append --groups gpio,dialout "$SERVICE_USER"
    step "user $SERVICE_USER exists (uid $(account_field passwd 3 "$SERVICE_USER")); made sure it is in gpio and dialout"
  else
    shadow_tool useradd --system --gid "$SERVICE_USER" --groups gpio,dialout --home-dir /var/lib/trustpile \
      --no-create-home --shell /usr/sbin/nologin --comment "trustpile EV charge point agent" "$SERVICE_USER"
    step "created the system user $SERVICE_USER (uid $(account_field passwd 3 "$SERVICE_USER"), no login shell, home /var/lib/trustpile, groups gpio dialout)"
  fi
fi

# Numeric ids from $DESTDIR/etc, so owners are right inside a DESTDIR whose accounts the build host does not have.
USER_ID=$(account_field passwd 3 "$SERVICE_USER")
GROUP_ID=$(account_field group 3 "$SERVICE_USER")
if [ -z "$USER_ID" ] || [ -z "$GROUP_ID" ]; then
  step "WARNING: no user/group $SERVICE_USER in ${DESTDIR:-}/etc: /etc/trustpile and /var/lib/trustpile are left owned by root; chown them once the account exists"
  USER_ID=0
  GROUP_ID=0
fi

# ---- directories and config -----------------------------------------------------------------------------------------
mkdir -p "$ETCDIR" "$STATEDIR"
chown "0:$GROUP_ID" "$ETCDIR"
chmod 0750 "$ETCDIR"
step "directory /etc/trustpile (root:$SERVICE_USER 0750: config, device key, address book)"
chown "$USER_ID:$GROUP_ID" "$STATEDIR"
chmod 0750 "$STATEDIR"
step "directory /var/lib/trustpile ($SERVICE_USER:$SERVICE_USER 0750: the journal)"

TEMPLATE="$ETCDIR/.config.yaml.tmp"
{
  printf '%s\n' \
    "# Installed by systemd/install.sh for the trustpile service, which reads this file as user trustpile." \
    "# Edit it (sudoedit /etc/trustpile/config.yaml), then check it as the service user:" \
    "#   sudo -u trustpile trustpile config check /etc/trustpile/config.yaml" \
    "# The file is root:trustpile 0640: the agent reads it, only root changes it." \
    "#"
  sed \
    -e 's|^dataDir: .*$|dataDir: /var/lib/trustpile|' \
    -e 's|^\(  deployment:\) \./deployment\.json$|\1 /etc/trustpile/deployment.json|' \
    -e 's|^\(  keystore:\) \./device-key\.json$|\1 /etc/trustpile/device-key.json|' \
    -e 's|^\(  passwordFile:\) \./device-key\.password$|\1 /etc/trustpile/device-key.password|' \
    -e 's|^\(  device: /dev/ttyUSB0 # rtu only\)$|\1; /dev/trustpile-meter with the udev rule 99-trustpile-rs485.rules|' \
    "$SRC/agent/config/example.yaml"
} >"$TEMPLATE"
for expected in 'dataDir: /var/lib/trustpile' '  deployment: /etc/trustpile/deployment.json' \
  '  keystore: /etc/trustpile/device-key.json' '  passwordFile: /etc/trustpile/device-key.password'; do
  grep -qx -- "$expected" "$TEMPLATE" || {
    rm -f "$TEMPLATE"
    die "agent/config/example.yaml changed shape: could not set '$expected' in the template (update install.sh)"
  }
done
chown "0:$GROUP_ID" "$TEMPLATE"
chmod 0640 "$TEMPLATE"
if [ ! -e "$ETCDIR/config.yaml" ]; then
  mv "$TEMPLATE" "$ETCDIR/config.yaml"
  step "wrote the commented config template /etc/trustpile/config.yaml (root:$SERVICE_USER 0640)"
elif cmp -s "$TEMPLATE" "$ETCDIR/config.yaml"; then
  rm -f "$TEMPLATE"
  step "kept /etc/trustpile/config.yaml (same as the new template)"
else
  mv "$TEMPLATE" "$ETCDIR/config.yaml.new"
  step "KEPT your /etc/trustpile/config.yaml; the new template is /etc/trustpile/config.yaml.new (compare: diff -u /etc/trustpile/config.yaml /etc/trustpile/config.yaml.new)"
fi

# ---- unit and udev rule ---------------------------------------------------------------------------------------------
mkdir -p "$(dirname "$UNIT")"
if [ "$PREFIX" = /usr ]; then
  install -m 0644 "$SRC/systemd/trustpile.service" "$UNIT"
else
  # The unit names /usr/bin/trustpile; point it at this PREFIX instead.
  sed -e "s|/usr/bin/trustpile|$PREFIX/bin/trustpile|g" "$SRC/systemd/trustpile.service" >"$UNIT"
  chmod 0644 "$UNIT"
fi
step "installed the unit /lib/systemd/system/trustpile.service"

mkdir -p "$(dirname "$UDEVRULE")"
install -m 0644 "$SRC/systemd/99-trustpile-rs485.rules" "$UDEVRULE"
step "installed the udev rule example /etc/udev/rules.d/99-trustpile-rs485.rules (FTDI/CH340 adapter -> /dev/trustpile-meter)"

# ---- systemd ------------------------------------------------------------------------------------------------------
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable trustpile
  step "systemd reloaded; trustpile enabled (it starts at boot; not started now)"
  if systemctl is-active --quiet trustpile; then
    step "the service is running the old program: restart it with: sudo systemctl restart trustpile"
  fi
  if command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload || true
    udevadm trigger --subsystem-match=tty || true
    step "udev rules reloaded"
  fi
else
  step "systemd not touched (DESTDIR set or systemd not running); on the target run: systemctl daemon-reload && systemctl enable trustpile && udevadm control --reload"
fi

cat <<EOF

trustpile is installed. Next steps for the owner (as root or with sudo):
  1. Edit the config: sudoedit /etc/trustpile/config.yaml (chargePointId, chain.rpcUrl, meter, gpio lines,
     ocpp, mqtt, owner.contact), and copy the contracts' address book to /etc/trustpile/deployment.json.
  2. The device key's password file, readable by the service only:
       sudo install -m 0600 -o trustpile -g trustpile /dev/null /etc/trustpile/device-key.password
       sudoedit /etc/trustpile/device-key.password        (one line: the password)
  3. A new device key (prints its address):
       sudo trustpile keys new --keystore /etc/trustpile/device-key.json --password-file /etc/trustpile/device-key.password
       sudo chown trustpile:trustpile /etc/trustpile/device-key.json
  4. Fund the printed address with gas money, then check: sudo trustpile keys show --config /etc/trustpile/config.yaml
  5. Register the charge point on chain: sudo trustpile chain register --config /etc/trustpile/config.yaml --price PRICE_PER_KWH
  6. Test meter, relay and network as the service user (no EV plugged in):
       sudo -u trustpile trustpile selftest --config /etc/trustpile/config.yaml --relay
  7. Run it: sudo systemctl enable --now trustpile ; follow it: journalctl -u trustpile -f
Keep /etc/trustpile (device key) and /var/lib/trustpile (journal) in your backups; uninstall.sh keeps them.
EOF
