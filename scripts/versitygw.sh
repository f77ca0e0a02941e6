#!/bin/sh
# Installs the pinned Versity S3 Gateway, the real S3-compatible server the uplink's tests run
# against, once: `go install` builds it (about 2.5 minutes the first time) into Go's bin
# directory under a versioned name. Prints the binary's path.
set -eu
VERSION=v1.8.0
GO=${GO:-go}
BINDIR=$($GO env GOPATH)/bin
BIN=$BINDIR/versitygw-$VERSION
if [ ! -x "$BIN" ]; then
	echo "installing versitygw $VERSION (about 2.5 minutes, once)" >&2
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	GOBIN=$tmp $GO install github.com/versity/versitygw/cmd/versitygw@$VERSION
	mkdir -p "$BINDIR"
	mv "$tmp/versitygw" "$BIN"
fi
echo "$BIN"
