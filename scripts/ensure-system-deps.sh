#!/usr/bin/env bash
# Install the system programs Canal uses if they are missing: `dot` (graphviz, to
# draw DAGs) and optionally `chromium` (browser tests) and `kubectl` (renders deploy/kubernetes
# in the tests; Debian's kubernetes-client, whose `kubectl kustomize` suffices). apt-get when root;
# otherwise say exactly what to run.
set -euo pipefail

want=()
for prog in "$@"; do
  case "$prog" in
    dot) command -v dot >/dev/null 2>&1 || want+=(graphviz) ;;
    chromium) command -v chromium >/dev/null 2>&1 || want+=(chromium) ;;
    kubectl) command -v kubectl >/dev/null 2>&1 || want+=(kubernetes-client) ;;
    sandbox) command -v bwrap >/dev/null 2>&1 || want+=(bubblewrap)
             command -v slirp4netns >/dev/null 2>&1 || want+=(slirp4netns)
             command -v setpriv >/dev/null 2>&1 || want+=(util-linux) ;;
    mysql-headers) pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists libmariadb 2>/dev/null \
                     || want+=(libmariadb-dev pkg-config) ;;
    *) echo "unknown dependency: $prog" >&2; exit 2 ;;
  esac
done
[ ${#want[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages: ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
else
  echo "Canal needs these system packages: ${want[*]}" >&2
  echo "Install them with:  sudo apt-get install ${want[*]}" >&2
  case " ${want[*]} " in
    *" graphviz "*) echo "(Without graphviz Canal still runs, but cannot draw pipeline graphs.)" >&2 ;;
  esac
  case " ${want[*]} " in
    *" bubblewrap "*|*" slirp4netns "*)
      echo "(Without them pipeline steps are NOT sandboxed: they can read Canal's files and secrets." >&2
      echo " Canal says so loudly at start-up and on every run page; see README, Security.)" >&2 ;;
  esac
fi
