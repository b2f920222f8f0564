#!/usr/bin/env bash
# Makes the credentials of a troupe cluster (docs/cluster.md, "Trust model"): a cluster CA and, for
# each node name given, a certificate signed by it with its private key. Every node then runs with
#   --cluster-cert DIR/NAME.pem --cluster-key DIR/NAME.key --cluster-ca DIR/ca.pem
# Run it again with new names to add nodes: an existing DIR/ca.pem + DIR/ca.key is reused.
#
# Usage: tools/make_cluster_certs.sh DIR NAME [NAME...]
#   NAME: a node's name (host name or IP address; it becomes the certificate's CN and subjectAltName).
#   TROUPE_CERT_DAYS: validity of new certificates in days (default 825; the CA gets 10 years).
# Needs the openssl command. Keys are EC P-256, written mode 0600. Copy to each node only its own
# NAME.pem/NAME.key and ca.pem; keep ca.key off the nodes (whoever holds it can mint members).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
dir="$1"
shift
days="${TROUPE_CERT_DAYS:-825}"
command -v openssl >/dev/null || { echo "make_cluster_certs: the openssl command is missing" >&2; exit 1; }
mkdir -p "$dir"
umask 077

if [[ -f "$dir/ca.pem" && -f "$dir/ca.key" ]]; then
  echo "make_cluster_certs: reusing the CA in $dir/ca.pem"
else
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
    -subj "/CN=troupe cluster CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 644 "$dir/ca.pem"
  echo "make_cluster_certs: new cluster CA $dir/ca.pem (its key $dir/ca.key signs members: keep it safe)"
fi

for name in "$@"; do
  if [[ ! "$name" =~ ^[A-Za-z0-9._:-]+$ ]]; then
    echo "make_cluster_certs: '$name' is not a host name or IP address" >&2
    exit 2
  fi
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san="IP:$name"; else san="DNS:$name"; fi
  ext="$(mktemp)"
  trap 'rm -f "$ext"' EXIT
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$san" >"$ext"
  # Both uses: a node is a TLS server when dialled and a TLS client when it dials (or joins).
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -subj "/CN=$name" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -sha256 \
    -days "$days" -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
  chmod 644 "$dir/$name.pem"
  echo "make_cluster_certs: $dir/$name.pem and $dir/$name.key"
done
