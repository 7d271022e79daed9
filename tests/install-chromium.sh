#!/usr/bin/env bash
# Installs headless Chromium and chromedriver from Debian's packages for the viewer
# browser test (tests/tests/viewer_browser.rs). Idempotent: a no-op when both exist.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo_ apt-get update -qq
$sudo_ apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
chromium --version
chromedriver --version
