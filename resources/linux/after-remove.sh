#!/bin/bash
# Line Station .deb post-remove (electron-builder `deb.afterRemove`): the launcher link and the
# udev rules go; the station's data dir (database, audit log, tokens config) is kept on purpose.
if type update-alternatives >/dev/null 2>&1; then
  update-alternatives --remove '${executable}' '/opt/${sanitizedProductName}/${executable}' || true
else
  rm -f '/usr/bin/${executable}'
fi

if [ "$1" = "remove" ] || [ "$1" = "purge" ] || [ -z "$1" ]; then
  rm -f /etc/udev/rules.d/70-line-station.rules
  if command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules || true
  fi
fi
exit 0
