// Package pulumi pins the Pulumi CLI that berth's Pulumi tests and
// examples run: this module requires github.com/pulumi/pulumi/pkg/v3 and
// sdk/v3 at one version and repeats the replace the CLI's own go.mod
// carries, so `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi` works
// from here (scripts/pulumi.sh does it, stamping the version in with
// -ldflags so the Automation API accepts the binary).
//
// It holds no code of its own: only the pins and the tests that keep them
// consistent.
package pulumi
