#!/bin/sh
# Developer install from a source checkout (needs the package index). Units get the offline .deb
# instead: `make release`, then `dpkg -i edge-ecg_<version>_arm64.deb` (docs/jetson.md).
#   sudo systemd/install.sh            # from the source checkout
#   DESTDIR=/tmp/root systemd/install.sh --no-start   # stage into a root tree (tests)
# Installs: /opt/edge-ecg/venv (the package; TensorRT/pycuda come from JetPack's system site
# packages), /etc/edge-ecg/edge-ecg.toml (kept if present), /etc/systemd/system/edge-ecg.service,
# /etc/udev/rules.d/99-edge-ecg-cart.rules, /etc/systemd/system/edge-ecg-display.socket,
# /etc/systemd/user/edge-ecg-kiosk.service and a random display PIN in /etc/edge-ecg/display.token
# (root only; kept if present). Bundles: the config requires signed ones; install them with
# `edge-ecg bundle install FILE --no-restart` (public key in /etc/edge-ecg/trusted.d).
set -eu
START=1
for arg in "$@"; do
  case "$arg" in
    --no-start) START=0 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (allowed: --no-start)" >&2; exit 2 ;;
  esac
done
SRC=$(cd "$(dirname "$0")/.." && pwd)
D=${DESTDIR:-}
PY=${PYTHON:-python3}

install -d -m 0755 "$D/opt/edge-ecg" "$D/etc/edge-ecg" "$D/etc/systemd/system" "$D/etc/systemd/user" "$D/etc/udev/rules.d"
if [ -z "${SKIP_VENV:-}" ]; then
  "$PY" -m venv --system-site-packages "$D/opt/edge-ecg/venv"
  "$D/opt/edge-ecg/venv/bin/pip" install -q "$SRC"
fi
install -d -m 0755 "$D/etc/edge-ecg/trusted.d" "$D/var/opt/edge-ecg/bundles"
if [ ! -e "$D/etc/edge-ecg/edge-ecg.toml" ]; then
  install -m 0644 "$SRC/systemd/edge-ecg.toml" "$D/etc/edge-ecg/edge-ecg.toml"
fi
install -m 0644 "$SRC/systemd/edge-ecg.service" "$D/etc/systemd/system/edge-ecg.service"
install -m 0644 "$SRC/systemd/99-edge-ecg-cart.rules" "$D/etc/udev/rules.d/99-edge-ecg-cart.rules"
install -m 0644 "$SRC/systemd/edge-ecg-display.socket" "$D/etc/systemd/system/edge-ecg-display.socket"
install -m 0644 "$SRC/systemd/edge-ecg-kiosk.service" "$D/etc/systemd/user/edge-ecg-kiosk.service"
if [ ! -e "$D/etc/edge-ecg/display.token" ]; then
  (umask 077 && "$PY" -c 'import secrets; print(f"{secrets.randbelow(10**6):06d}")' > "$D/etc/edge-ecg/display.token")
  echo "edge-ecg: display PIN written to /etc/edge-ecg/display.token (root only); set your own there"
fi

if [ "$START" = 1 ] && [ -z "$D" ]; then
  getent passwd edge-ecg >/dev/null || useradd --system --user-group --groups dialout --home-dir /var/lib/edge-ecg --no-create-home edge-ecg
  udevadm control --reload-rules && udevadm trigger --subsystem-match=tty
  systemctl daemon-reload
  /opt/edge-ecg/venv/bin/edge-ecg run --config /etc/edge-ecg/edge-ecg.toml --check
  systemctl enable --now edge-ecg-display.socket
  systemctl enable --now edge-ecg.service
  echo "edge-ecg: installed and started; journalctl -u edge-ecg -f; edge-ecg alarms status"
else
  echo "edge-ecg: staged into ${D:-/} (not started)"
fi
