#!/usr/bin/env bash
# Makes a CA and a certificate per role for a job's TLS (security.tls), with
# openssl: DIR/ca.pem (give it to every process as security.tls.ca) and, for
# ROLE in scheduler, server, worker, admin, DIR/ROLE.pem and DIR/ROLE.key
# (OU=ROLE: with security.tls.mutual the servers and the scheduler take the
# caller's role from it). Every certificate names localhost, 127.0.0.1, ::1
# and each HOST given (a DNS name or an IP address: the compose services,
# the hosts of a --hostfile, POD.server.NAMESPACE.svc in Kubernetes).
#   deploy/make_certs.sh DIR [HOST...]
# Keys are mode 0600; the CA key stays in DIR/ca.key (keep it off the cluster).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [HOST...]" >&2
  exit 2
fi
dir=$1
shift
umask 077
mkdir -p "$dir"
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for h in "$@"; do
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
done
if [ ! -f "$dir/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/O=paramserver/CN=paramserver job CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
fi
for role in scheduler server worker admin; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/O=paramserver/OU=$role/CN=$role" -keyout "$dir/$role.key" -out "$dir/$role.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$role.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -out "$dir/$role.pem" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san") 2>/dev/null
  rm -f "$dir/$role.csr"
done
rm -f "$dir/ca.srl"
echo "make_certs: CA $dir/ca.pem; certificates $dir/{scheduler,server,worker,admin}.pem for $san"
