#!/bin/sh
# Creates the certificates of the client TLS tests in DIR, with openssl, at test time (no key is
# ever committed). All valid for one day, EC P-256:
#   ca.pem, ca.key          the test CA
#   server.pem, server.key  the gateway's: CN and only DNS SAN "gateway.test" (no IP SAN, so a
#                           client calling 127.0.0.1 must set the server name to gateway.test)
#   client.pem, client.key  a caller's, signed by the test CA: DNS SANs "billing", "billing.test"
#   other-ca.pem            a CA that signed neither (for "a wrong CA fails")
#   rogue.pem, rogue.key    a client certificate signed by the other CA
# Usage: make_test_certs.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
ca() {  # NAME CN
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout "$1.key" -out "$1.pem" 2>/dev/null
}
leaf() {  # NAME CA CN SAN USAGE
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$4" "$5" > "$1.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$3" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 1 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca "userpilot-gateway test CA"
ca other-ca "some other CA"
leaf server ca gateway.test "DNS:gateway.test" serverAuth
leaf client ca billing-cn "DNS:billing,DNS:billing.test" clientAuth
leaf rogue other-ca billing-cn "DNS:billing" clientAuth
rm -f ./*.srl
