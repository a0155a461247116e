#!/usr/bin/env bash
# System packages behind the demo's real assets and its report check (Debian/Ubuntu):
#   espeak-ng               spoken words in several voices (the `sounds` dataset)
#   fonts-noto-color-emoji  emoji glyphs named by their Unicode names (the `pictures` dataset)
#   chromium-headless-shell opens report.html headless and checks that every image renders
# Installs the missing ones with apt-get when run as root. Otherwise it names them and exits 1, unless
# UNIALIGN_ASSETS_OPTIONAL=1 (then the demo falls back to generated sounds/pictures and skips the check).
set -uo pipefail

missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 \
  || missing+=(chromium-headless-shell)
[ ${#missing[@]} -eq 0 ] && exit 0

optional="${UNIALIGN_ASSETS_OPTIONAL:-0}"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "demo assets: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/unialign-apt.log 2>&1 \
     || { apt-get update -q >>/tmp/unialign-apt.log 2>&1 \
          && apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/unialign-apt.log 2>&1; }; then
    exit 0
  fi
  echo "demo assets: apt-get install failed (log: /tmp/unialign-apt.log)" >&2
else
  echo "demo assets: missing ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get install --no-install-recommends ${missing[*]}" >&2
fi
if [ "$optional" = 1 ]; then
  echo "demo assets: continuing without them (generated sounds/pictures; no Chromium report check)" >&2
  exit 0
fi
echo "demo assets: or run with UNIALIGN_ASSETS_OPTIONAL=1 to use the generated fallbacks" >&2
exit 1
