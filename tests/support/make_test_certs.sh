#!/usr/bin/env bash
# Writes the TLS files the tests use for the cluster port into DIR: a test
# CA and a node certificate it signed (for API nodes and workers alike),
# plus what must be refused: a certificate from another CA, an encrypted
# copy of the node key, a certificate for servers only, a key of another
# certificate. Short-lived keys for tests, made fresh on each run.
#   make_test_certs.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
quiet() { "$@" >/dev/null 2>&1 || { "$@"; exit 1; }; }

# ca NAME: a self-signed CA certificate NAME.pem with key NAME.key
ca() {
  quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" \
    -out "$1.pem" -days 2 -subj "/CN=resized test $1" \
    -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign
}
# leaf NAME CA USAGES: NAME.pem (key NAME.key) signed by CA, extendedKeyUsage
leaf() {
  quiet openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=resized test $1"
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n' "$3" > "$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
    -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}

ca ca
leaf node ca serverAuth,clientAuth
ca other-ca
leaf rogue other-ca serverAuth,clientAuth
leaf server-only ca serverAuth
quiet openssl pkey -in node.key -aes256 -passout pass:test-passphrase \
  -out node-encrypted.key
chmod 600 ./*.key
