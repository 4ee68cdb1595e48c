#!/usr/bin/env bash
# Debian packages that tests and the benchmark use. Installs only what is missing, and only
# when it can (root + apt); otherwise it says what to install and the dependent tests skip.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The local cluster's load balancer (make cluster, make test-cluster).
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || echo "warning: could not install ${need[*]}"
else
  echo "warning: missing ${need[*]}; install them with apt-get (tests that need them will be skipped)"
fi
