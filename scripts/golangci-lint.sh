#!/bin/sh
# Runs golangci-lint at the version the project pins, installing it into bin/
# with `go install` from the Go module proxy when it is missing or another
# version. Arguments are passed to golangci-lint, e.g. `run ./...`.
set -eu

GOLANGCI_LINT_VERSION="${GOLANGCI_LINT_VERSION:-v2.15.0}"
GO="${GO:-go}"

cd "$(dirname "$0")/.."
bindir="$(pwd)/bin"
lint="$bindir/golangci-lint"

if [ ! -x "$lint" ] || ! "$lint" version 2>/dev/null | grep -q "version ${GOLANGCI_LINT_VERSION#v} "; then
	echo "installing golangci-lint $GOLANGCI_LINT_VERSION into bin/" >&2
	GOBIN="$bindir" GOFLAGS=-buildvcs=false "$GO" install \
		"github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"
fi

exec "$lint" "$@"
