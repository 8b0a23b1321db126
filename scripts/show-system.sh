#!/usr/bin/env bash
# Shows the system working on this machine, on loopback: the gateway from the
# default brand's Linux bundle, an office PC registering and serving, a home PC
# connecting by computer ID and carrying 32 MiB to a stand-in "remote desktop"
# (an echo service) with a checksum, and the admin's /thinstat/ view.
# Usage: scripts/show-system.sh [BIN_DIR]   (default: target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release}
work=$(mktemp -d)
pids=()
# Stops what it started and waits until each has exited (the gateway saves its
# database and closes its log on SIGTERM) before removing their folder; one
# still running after 15 s is killed.
cleanup() {
  local p i
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for i in $(seq 150); do
    for p in "${pids[@]}"; do
      case "$(ps -o stat= -p "$p" 2>/dev/null)" in "" | Z*) ;; *) sleep 0.1; continue 2 ;; esac
    done
    break
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bundle=$(ls dist/*/thingate-*-linux-x86_64.tar.gz 2>/dev/null | head -n1 || true)
if [ -n "$bundle" ]; then
  echo "== gateway bundle: $bundle"
  tar -xzf "$bundle" -C "$work"
  gdir=$(dirname "$(find "$work" -name ThinGate.ini | head -n1)")
  ca=$(find .brand-cache -name ca.cer 2>/dev/null | head -n1)
  gate="$gdir/thingate"
else
  echo "== no gateway bundle in dist/: making a throw-away CA with openssl"
  gdir="$work/gate"; mkdir -p "$gdir"
  (cd "$gdir" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.cer -days 2 -subj /CN=Demo-CA \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ThinGate.key -out g.csr -subj /CN=127.0.0.1 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1\n' > ext.cnf &&
    openssl x509 -req -in g.csr -CA ca.cer -CAkey ca.key -CAcreateserial -out ThinGate.cer -days 2 -extfile ext.cnf 2>/dev/null)
  printf 'ServerCert ThinGate.cer\nServerKey ThinGate.key\n' > "$gdir/ThinGate.ini"
  ca="$gdir/ca.cer"
  gate="$BIN/thingate"
fi
# Demo on loopback with a free port instead of 443.
sed -i -e '/^ListenPort/d' -e '/^ListenAddress/d' -e '/^SaveLog/d' -e '/^DatabaseFile/d' "$gdir/ThinGate.ini"
printf 'ListenAddress 127.0.0.1\nListenPort 0\nDatabaseFile %s/MachineDatabase.config\n' "$gdir" >> "$gdir/ThinGate.ini"

"$gate" run --config "$gdir/ThinGate.ini" > "$work/gate.out" 2> "$work/gate.log" & pids+=($!)
for _ in $(seq 100); do grep -q "^listening on" "$work/gate.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$work/gate.out")
echo "== thingate: listening on $addr"
{ cat "$ca"; printf 'https://%s/thingate/\nSYSTEM:Demo\n' "$addr"; } > "$work/EntryPoint.dat"

curl -sk "https://$addr/thingate/" | head -c 200; echo

python3 - "$work/echo.port" <<'PY' & pids+=($!)
import socket, sys, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
def echo(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR); c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
PY
for _ in $(seq 100); do [ -s "$work/echo.port" ] && break; sleep 0.1; done
echo_port=$(cat "$work/echo.port")

echo "== thinsvr: register desk-01"
echo "demo tram violet ledger" | "$BIN/thinsvr" --entry-point "$work/EntryPoint.dat" --config-dir "$work/office" register --pcid desk-01 --password-stdin
"$BIN/thinsvr" --entry-point "$work/EntryPoint.dat" --config-dir "$work/office" run --target "127.0.0.1:$echo_port" > "$work/svr.out" 2> "$work/svr.log" & pids+=($!)
for _ in $(seq 100); do grep -q "^online as" "$work/svr.out" 2>/dev/null && break; sleep 0.1; done
cat "$work/svr.out"

echo "== thinclient: connect desk-01"
echo "demo tram violet ledger" | "$BIN/thinclient" --entry-point "$work/EntryPoint.dat" connect desk-01 --password-stdin --no-launch > "$work/cli.out" 2> "$work/cli.log" & pids+=($!)
for _ in $(seq 100); do grep -q "^listening on" "$work/cli.out" 2>/dev/null && break; sleep 0.1; done
local_addr=$(sed -n 's/^listening on //p' "$work/cli.out")
echo "thinclient: listening on $local_addr (a viewer would be started against it)"

python3 - "$local_addr" <<'PY'
import hashlib, os, socket, sys, threading, time
host, port = sys.argv[1].rsplit(":", 1)
data = os.urandom(32 << 20)
s = socket.create_connection((host, int(port)))
got = bytearray()
def rd():
    while True:
        d = s.recv(1 << 20)
        if not d: break
        got.extend(d)
t = threading.Thread(target=rd); t.start()
t0 = time.time(); s.sendall(data); s.shutdown(socket.SHUT_WR); t.join(); dt = time.time() - t0
ok = hashlib.sha256(data).hexdigest() == hashlib.sha256(got).hexdigest()
print(f"relayed 32 MiB each way in {dt:.2f} s; SHA-256 {'matches' if ok else 'DIFFERS'}")
sys.exit(0 if ok else 1)
PY

echo "== /thinstat/ (as the admin sees it on the gateway host)"
curl -sk "https://$addr/thinstat/"
echo "== wrong password"
if echo "not it" | "$BIN/thinclient" --entry-point "$work/EntryPoint.dat" connect desk-01 --password-stdin --no-launch; then
  echo "unexpected success" >&2; exit 1
fi
echo "== done: the system works"
