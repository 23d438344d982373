#!/usr/bin/env bash
# Install the Debian packages the test suite needs, when they are missing.
#   chromium     real-browser tests (Playwright drives /usr/bin/chromium)
#   nginx-light  validates the shipped nginx configuration (nginx -t)
#   xmlsec1      verifies SAML signatures (single sign-on)
#   espeak-ng    speaks the simulated callers and the speech stand-ins (conversation engine)
#   sox          converts that speech to a phone call's 8 kHz mu-law
set -euo pipefail

declare -A provides=([chromium]=/usr/bin/chromium [nginx-light]=/usr/sbin/nginx [xmlsec1]=/usr/bin/xmlsec1 [espeak-ng]=/usr/bin/espeak-ng [sox]=/usr/bin/sox)
missing=()
for package in "$@"; do
  target=${provides[$package]:-}
  if [ -n "$target" ] && [ -x "$target" ]; then continue; fi
  if [ -z "$target" ] && dpkg -s "$package" >/dev/null 2>&1; then continue; fi
  missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing system packages: ${missing[*]} (install them with your package manager)" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "Missing system packages: ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
