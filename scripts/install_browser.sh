#!/bin/sh
# Debian's Chromium and ChromeDriver for the browser test (tests/test_web_browser.py); nothing else is fetched.
# Without root or apt the test is skipped, saying why.
set -e
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
