#!/usr/bin/env bash
# Installs the Debian packages the tests use when they are missing and we may install them.
# Tests that need a missing tool skip with a reason, so this never fails the run.
set -u
need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)  # Selenium drives the bedside display page
command -v aplay >/dev/null 2>&1 || need+=(alsa-utils)  # the alarm sound's player (ALSA)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# the release: lintian checks the .deb; the install test needs venv and ip inside the throwaway machine
command -v lintian >/dev/null 2>&1 || need+=(lintian)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null 2>&1 \
    || echo "system-deps: could not install ${need[*]}; the tests that need them will skip"
else
  echo "system-deps: missing ${need[*]} (not root); the tests that need them will skip"
fi
exit 0
