#!/bin/sh
# `pip install ARGS` for the image builds: trusts the PEM certificates of EXTRA_CA_CERT (a build
# argument: a mirror's or a TLS-inspecting proxy's CA) besides the image's own, for this
# command only. PIP_INDEX_URL, also a build argument, names the index.
set -eu
if [ -n "${EXTRA_CA_CERT:-}" ]; then
    bundle=$(mktemp)
    trap 'rm -f "$bundle"' EXIT
    cat /etc/ssl/certs/ca-certificates.crt >"$bundle"
    printf '%s\n' "$EXTRA_CA_CERT" >>"$bundle"
    export PIP_CERT="$bundle"
fi
pip install --no-compile "$@"
