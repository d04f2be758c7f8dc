#!/bin/bash
# Line Station .deb post-install (electron-builder `deb.afterInstall`; it fills in ${...}).
# 1. The launcher link and chrome-sandbox mode, as electron-builder's default script does.
# 2. udev rules: boards (USB CDC-ACM, vendor USB) are readable by the plugdev group and the seated
#    user, so the station never runs as root. PKCS#11 modules are NOT installed here: the HSM
#    vendor's module is configured by path in the station config (docs/hsm.md).
set -e

APP_DIR='/opt/${sanitizedProductName}'
if type update-alternatives >/dev/null 2>&1; then
  update-alternatives --install '/usr/bin/${executable}' '${executable}' "$APP_DIR/${executable}" 100 \
    || ln -sf "$APP_DIR/${executable}" '/usr/bin/${executable}'
else
  ln -sf "$APP_DIR/${executable}" '/usr/bin/${executable}'
fi

# The SUID sandbox helper only where unprivileged user namespaces are unavailable.
if ! { [[ -L /proc/self/ns/user ]] && unshare --user true; } 2>/dev/null; then
  chmod 4755 "$APP_DIR/chrome-sandbox" || true
else
  chmod 0755 "$APP_DIR/chrome-sandbox" || true
fi

RULES_SRC="$APP_DIR/resources/udev/70-line-station.rules"
RULES_DST='/etc/udev/rules.d/70-line-station.rules'
if [ -f "$RULES_SRC" ]; then
  install -m 0644 -o root -g root "$RULES_SRC" "$RULES_DST"
  if command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules || true
    udevadm trigger --subsystem-match=usb --subsystem-match=tty || true
  fi
fi

if hash update-desktop-database 2>/dev/null; then
  update-desktop-database /usr/share/applications || true
fi
exit 0
