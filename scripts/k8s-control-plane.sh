#!/usr/bin/env bash
# Build (once) and cache a real Kubernetes v1.20.2 control plane for the tests:
# kube-apiserver and kube-controller-manager built from Debian bookworm's
# `kubernetes` source package, plus Debian's etcd.
#
# Usage: scripts/k8s-control-plane.sh   (prints the bin dir on stdout)
# Env: KATIB_K8S_CACHE (cache root), KATIB_K8S_NO_BUILD=1 (never build),
# KATIB_K8S_KEEP_SRC=1 (keep the 2 GB source tree after building),
# KATIB_APT_LOCK_TIMEOUT (seconds to wait for another apt/dpkg's lock; 900).
#
# Idempotent: when the binaries are already cached it only prints the bin dir
# and exits (no apt, no network). Everything it builds lives outside the repo:
#   ${KATIB_K8S_CACHE:-$HOME/.cache/katib-test-k8s}/v1.20.2/
#     bin/kube-apiserver, bin/kube-controller-manager, bin/etcd-path
#     build.log, download/ (the source package), src/ (the unpacked tree, only
#     while building or with KATIB_K8S_KEEP_SRC=1)
#
# Exit codes: 0 ok (bin dir on stdout), 69 (EX_UNAVAILABLE) not cached and
# cannot build here (not root / no apt-get / KATIB_K8S_NO_BUILD=1), anything
# else: the build failed (its log's tail is on stderr).
set -euo pipefail

K8S_VERSION=v1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
CACHE_ROOT=${KATIB_K8S_CACHE:-$HOME/.cache/katib-test-k8s}
CACHE=$CACHE_ROOT/$K8S_VERSION
BIN=$CACHE/bin
LOG=$CACHE/build.log
GO_BIN=/usr/lib/go-1.19/bin

cached() {
    [[ -x $BIN/kube-apiserver && -x $BIN/kube-controller-manager && -s $BIN/etcd-path ]] &&
        [[ -x $(cat "$BIN/etcd-path") ]]
}

# All of it in a function: bash parses a function whole before running it, so
# editing this file while a build runs cannot derail that build.
main() {
    # Fast path: nothing to do, no locks, no apt.
    if cached; then
        echo "$BIN"
        exit 0
    fi

    if [[ ${KATIB_K8S_NO_BUILD:-0} == 1 ]]; then
        echo "k8s-control-plane: binaries not cached in $BIN and KATIB_K8S_NO_BUILD=1" >&2
        exit 69
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "k8s-control-plane: binaries not cached in $BIN and cannot build here" \
            "(needs root and apt-get)" >&2
        exit 69
    fi

    mkdir -p "$CACHE"
    # One builder at a time: parallel pytest sessions would otherwise race.
    exec 9>"$CACHE/build.lock"
    flock 9
    if cached; then
        echo "$BIN"
        exit 0
    fi

    echo "k8s-control-plane: building kube-apiserver $K8S_VERSION; log: $LOG" >&2
    # From here on, all output goes to the build log; a failure shows its tail.
    exec 3>&1 4>&2 >"$LOG" 2>&1
    trap 'rc=$?; set +x; if [[ $rc -ne 0 ]]; then
        echo "k8s-control-plane: build failed (exit $rc); last lines of $LOG:" >&4
        tail -n 40 "$LOG" >&4; fi' EXIT
    set -x
    date

    export DEBIAN_FRONTEND=noninteractive
    # Another apt or dpkg (unattended upgrades, a parallel install) may hold the locks: wait
    # for them, up to KATIB_APT_LOCK_TIMEOUT seconds, instead of failing at once.
    APT=(apt-get -o "DPkg::Lock::Timeout=${KATIB_APT_LOCK_TIMEOUT:-900}")
    PKGS=(etcd-server golang-1.19-go golang-github-modern-go-reflect2-dev dpkg-dev
          make rsync ca-certificates xz-utils)

    # deb-src for bookworm: the source package lives in the main archive (the
    # +deb12u1 version came in through a point release), the security suite is
    # added too in case a later fix lands there.
    SRC_LIST=/etc/apt/sources.list.d/katib-bookworm-src.sources
    need_update=0
    if ! grep -rqsE --include='*.list' --include='*.sources' '^(deb-src|Types:.*deb-src)' \
            /etc/apt/sources.list /etc/apt/sources.list.d/; then
        cat >"$SRC_LIST" <<'EOF'
# Added by katib scripts/k8s-control-plane.sh: source of the test kube-apiserver.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        need_update=1
    fi
    # apt-get update only when a package or the source index is unknown.
    for p in "${PKGS[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || apt-cache show "$p" >/dev/null 2>&1 || need_update=1
    done
    if ! ls /var/lib/apt/lists/*_source_Sources* >/dev/null 2>&1; then
        need_update=1
    fi
    if [[ $need_update -eq 1 ]]; then
        "${APT[@]}" update
    fi
    missing=()
    for p in "${PKGS[@]}"; do
        dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        "${APT[@]}" install -y --no-install-recommends "${missing[@]}"
    fi

    ETCD=$(command -v etcd || true)
    [[ -x $ETCD ]] || { echo "etcd not found after installing etcd-server"; exit 1; }

    # Source: the orig tarball is the full upstream tree including vendor/.
    DL=$CACHE/download
    SRC=$CACHE/src/kubernetes-$K8S_VERSION
    mkdir -p "$DL"
    if [[ ! -f $SRC/.unpacked ]]; then
        (cd "$DL" && ls kubernetes_*.orig.tar.* >/dev/null 2>&1 ||
            "${APT[@]}" source --download-only "kubernetes=$DEB_VERSION")
        rm -rf "$SRC"
        mkdir -p "$SRC"
        orig=$(ls "$DL"/kubernetes_*.orig.tar.* | head -n1)
        tar -xf "$orig" -C "$SRC" --strip-components=1
        # reflect2 v1.0.1 relies on runtime internals that changed in Go 1.18
        # (maps iterate wrongly / crash); Debian's 1.0.2 sources are the fix.
        R2=$SRC/vendor/github.com/modern-go/reflect2
        rm -f "$R2"/*.go "$R2"/*.s
        cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$R2"/
        cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$R2"/ 2>/dev/null || true
        rm -f "$R2"/*_test.go
        touch "$SRC/.unpacked"
    fi

    export PATH=$GO_BIN:$PATH GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0
    export KUBE_GIT_VERSION=$K8S_VERSION KUBE_GIT_TREE_STATE=clean
    # (hack/lib/golang.sh points GOPATH and GOCACHE into _output/ itself.)
    cd "$SRC"
    # The make rule runs the code generators (openapi etc.) first; a plain
    # `go build` of this version does not.
    make WHAT=cmd/kube-apiserver
    make WHAT=cmd/kube-controller-manager

    mkdir -p "$BIN"
    install -m 0755 _output/bin/kube-apiserver "$BIN/kube-apiserver.tmp"
    install -m 0755 _output/bin/kube-controller-manager "$BIN/kube-controller-manager.tmp"
    mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
    mv "$BIN/kube-controller-manager.tmp" "$BIN/kube-controller-manager"
    echo "$ETCD" >"$BIN/etcd-path.tmp"
    mv "$BIN/etcd-path.tmp" "$BIN/etcd-path"
    "$BIN/kube-apiserver" --version
    # The tree (with _output/ and Go's build cache) is ~2 GB; the binaries are
    # all the tests need. KATIB_K8S_KEEP_SRC=1 keeps it for rebuilding.
    if [[ ${KATIB_K8S_KEEP_SRC:-0} != 1 ]]; then
        cd "$CACHE"
        rm -rf "$CACHE/src"
    fi
    date
    set +x
    echo "$BIN" >&3
}

main "$@"; exit  # on the same line: bash reads no further, so an edit during a build is harmless
