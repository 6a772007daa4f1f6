#!/usr/bin/env bash
# Installs what the process-level tests need, idempotently and safely in parallel:
#   setup.sh etcd          Debian's etcd-server and etcd-client (etcd 3.4, etcdctl)
#   setup.sh python-etcd   venv target/venvs/python-etcd: python-etcd 0.4.5, pytest, nose, pyOpenSSL,
#                          idna
#   setup.sh dsoprea       venv target/venvs/dsoprea: PyPI etcd 2.0.8 (fetched at test time, not
#                          committed: it is GPL) with requests, pytz, simplejson
# Fails with a message if something cannot be installed; never skips.
set -euo pipefail
cd "$(dirname "$0")/../../.."
mkdir -p target/venvs
exec 9>target/venvs/.setup.lock
flock 9

python=${FLOE_PYTHON:-python3}

for what in "$@"; do
  case "$what" in
  etcd)
    if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
      echo "installing etcd-server and etcd-client (apt-get)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
    fi
    # (not `| head -1`: with pipefail, etcd's SIGPIPE would fail the script)
    version=$(etcd --version)
    echo "${version%%$'\n'*}"
    ;;
  python-etcd)
    venv=target/venvs/python-etcd
    if [ ! -f "$venv/.ready" ]; then
      rm -rf "$venv"
      "$python" -m venv "$venv"
      "$venv/bin/pip" install -q python-etcd==0.4.5 pytest nose pyopenssl
      touch "$venv/.ready"
    fi
    # https: python-etcd hands urllib3 to pyOpenSSL, whose certificate-name code imports idna
    # (added after the first venvs were made, so checked on its own).
    if ! "$venv/bin/python" -c 'import idna' 2>/dev/null; then
      "$venv/bin/pip" install -q idna
    fi
    echo "python-etcd venv ready"
    ;;
  dsoprea)
    venv=target/venvs/dsoprea
    if [ ! -f "$venv/.ready" ]; then
      rm -rf "$venv"
      "$python" -m venv "$venv"
      "$venv/bin/pip" install -q requests pytz simplejson
      # The sdist's setup.py cannot run (engine/src/store/README.md §12.2): unpack it and copy
      # the package.
      # pip fails at metadata generation, but --no-clean leaves the unpacked tree behind.
      work=$(mktemp -d)
      TMPDIR="$work" "$venv/bin/pip" download -q --no-deps --no-clean -d "$work/dl" etcd==2.0.8 >/dev/null 2>&1 || true
      pkg=$(find "$work" -path '*/etcd/client.py' -not -path '*/dl/*' | head -1)
      if [ -z "$pkg" ]; then
        echo "setup.sh: could not fetch PyPI etcd==2.0.8's sources" >&2
        exit 1
      fi
      site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
      cp -r "$(dirname "$pkg")" "$site/etcd"
      rm -rf "$work"
      touch "$venv/.ready"
    fi
    echo "dsoprea venv ready"
    ;;
  *) echo "setup.sh: unknown component $what" >&2; exit 2 ;;
  esac
done
